import LifeboatCore

/// How an entry's header differs from its record, each difference a sentence fragment that
/// follows the entry's name ("is a file in the archive but a directory in the record").
/// Compares what the record holds; fields a record lacks (manifests written before they
/// existed) are not compared. Data (size read, SHA-256) is checked by the callers as they
/// read it.
///
/// Verification reports every difference; extraction refuses the entry at the first.
func headerDifferences(_ header: ArchiveEntryHeader, _ recorded: EntryRecord) -> [String] {
    var differences: [String] = []
    if recorded.kind != header.kind {
        differences.append("is a \(header.kind.rawValue) in the archive but a \(recorded.kind.rawValue) in the record")
        return differences
    }
    if header.kind == .file, header.size != recorded.size {
        differences.append("is a file of \(header.size) bytes in the archive but of \(recorded.size) bytes in the record")
    }
    if let mode = recorded.mode, header.kind != .symlink, mode & 0o7777 != header.mode {
        differences.append("has mode \(String(header.mode, radix: 8)) in the archive but \(String(mode, radix: 8)) in the record")
    }
    if let time = recorded.modificationTime, time != header.modificationTime {
        differences.append("has modification time \(header.modificationTime) in the archive but \(time) in the record")
    }
    if header.kind == .symlink || header.kind == .hardlink, let target = recorded.rawLinkTarget,
       target != header.rawLinkTarget?.bytes {
        differences.append("links to '\(header.linkTarget ?? "")' in the archive but to '\(recorded.linkTarget ?? "")' in the record")
    }
    if let uid = recorded.uid, let gid = recorded.gid {
        let archived = header.owner
        if uid != archived.uid || gid != archived.gid || recorded.user != archived.user || recorded.group != archived.group {
            differences.append("is owned by \(ownerText(archived.uid, archived.gid, archived.user, archived.group)) in the archive but by \(ownerText(uid, gid, recorded.user, recorded.group)) in the record")
        }
    }
    if header.kind == .characterDevice || header.kind == .blockDevice {
        let recordedDevice = recorded.deviceMajor.flatMap { major in
            recorded.deviceMinor.map { DeviceNumber(major: major, minor: $0) }
        }
        if recordedDevice != header.device {
            differences.append("is device \(deviceText(header.device)) in the archive but \(deviceText(recordedDevice)) in the record")
        }
    }
    if header.kind == .file, recorded.sparseMap != header.dataRegions {
        differences.append("has \(regionsText(header.dataRegions)) in the archive but \(regionsText(recorded.sparseMap)) in the record")
    }
    return differences
}

private func ownerText(_ uid: UInt32, _ gid: UInt32, _ user: String?, _ group: String?) -> String {
    "\(user ?? "")(\(uid)):\(group ?? "")(\(gid))"
}

private func deviceText(_ device: DeviceNumber?) -> String {
    device.map { "\($0.major),\($0.minor)" } ?? "(none)"
}

private func regionsText(_ regions: [DataRegion]?) -> String {
    guard let regions else { return "no sparse map" }
    let shown = regions.prefix(4).map { "\($0.offset)+\($0.length)" }.joined(separator: ", ")
    return "a sparse map of \(regions.count) data region\(regions.count == 1 ? "" : "s") [\(shown)\(regions.count > 4 ? ", …" : "")]"
}

import Crypto
import LifeboatCore

/// One thing wrong with a stored artifact.
public struct VerificationProblem: Sendable, Equatable, CustomStringConvertible {
    /// The artifact's path (as in its record).
    public var artifact: String
    /// The entry concerned, when there is one.
    public var entry: String?
    /// What is wrong, in a sentence fragment following the artifact and entry ("SHA-256 mismatch: …").
    public var message: String

    public init(artifact: String, entry: String?, message: String) {
        self.artifact = artifact
        self.entry = entry
        self.message = message
    }

    public var description: String {
        if let entry {
            return "artifact '\(artifact)', entry '\(entry)': \(message)"
        }
        return "artifact '\(artifact)': \(message)"
    }
}

/// The message of an error, without its hint (a problem list is not the place for hints).
func problemText(_ error: any Error) -> String {
    if let error = error as? LifeboatError { return error.message }
    return String(describing: error)
}

/// The digest an entry's record holds: that of its data, or for a symbolic or hard link, of
/// its target's bytes.
func recordedDigest(_ header: ArchiveEntryHeader, dataDigest: String) -> String {
    switch header.kind {
    case .symlink, .hardlink: return sha256Hex(of: header.rawLinkTarget ?? EntryPath(bytes: []))
    default: return dataDigest
    }
}

/// Reads a whole artifact and compares it with its record: every entry's kind, metadata
/// (mode, time, owner, link target, device number, sparse map), size and SHA-256 (of its
/// logical content), entries missing or unexpected, hard links that do not name an earlier
/// file of the archive, and the stored object's size and SHA-256.
///
/// Never throws and never stops at the first problem: it reports everything it can. After an
/// error libarchive cannot recover from (damaged compression, truncation), it stops reading
/// entries, reports the recorded entries it did not reach, and still hashes the rest of the
/// stored object. The caller closes `source`. Returns no problems for an intact artifact.
public func verifyArtifact(_ record: ArtifactRecord, source: any ObjectReader) -> [VerificationProblem] {
    var problems: [VerificationProblem] = []
    func report(_ entry: String?, _ message: String) {
        problems.append(VerificationProblem(artifact: record.path, entry: entry, message: message))
    }

    var expected: [EntryPath: EntryRecord] = [:]
    for entry in record.entries {
        let path = EntryPath(recordedPathOf: entry)
        if expected[path] != nil {
            report(entry.path, "is listed more than once in the record")
        } else {
            expected[path] = entry
        }
    }

    let context = ReadContext(source: source)
    var seen: Set<EntryPath> = []
    var files: Set<EntryPath> = []
    var stoppedEarly = false

    let reader: ArtifactReader?
    do {
        reader = try ArtifactReader(context: context, artifactPath: record.path)
    } catch {
        reader = nil
        stoppedEarly = true
        report(nil, "unreadable before the first entry: \(problemText(error))")
    }

    if let reader {
        while true {
            let header: ArchiveEntryHeader?
            do {
                header = try reader.nextEntry()
            } catch {
                stoppedEarly = true
                report(nil, "reading stopped: \(problemText(error))")
                break
            }
            guard let header else { break }
            let path = header.path
            if !seen.insert(header.rawPath).inserted {
                report(path, "appears more than once in the archive")
            }
            let recorded = expected[header.rawPath]
            if let recorded {
                for difference in headerDifferences(header, recorded) { report(path, difference) }
            } else {
                report(path, "is in the archive but not in the record")
            }
            if header.kind == .hardlink, let target = header.rawLinkTarget, !files.contains(target) {
                report(path, "is a hard link to '\(target)', which is not a file earlier in the archive")
            }

            // A file whose header disagrees with its record on the logical size or the sparse
            // map (or that has no record) is skipped, not read: its digest cannot match, and a
            // hostile header can declare a hole of any size, which reading would hash as zeros.
            if header.kind == .file, recorded.map({ $0.size != header.size || $0.sparseMap != header.dataRegions }) ?? true {
                files.insert(header.rawPath)
                continue
            }
            let data: (size: Int64, sha256: String)
            do {
                data = try reader.readLogicalContent { _, _ in }
            } catch {
                stoppedEarly = true
                report(path, "reading stopped in this entry: \(problemText(error))")
                break
            }
            if header.kind == .file { files.insert(header.rawPath) }
            guard let recorded else { continue }
            let digest = recordedDigest(header, dataDigest: data.sha256)
            if data.size != recorded.size {
                report(path, "holds \(data.size) bytes but the record says \(recorded.size)")
            }
            if digest != recorded.sha256 {
                report(path, "SHA-256 mismatch: the record says \(recorded.sha256), the archive holds \(digest)")
            }
        }
    }

    for entry in record.entries where !seen.contains(EntryPath(recordedPathOf: entry)) {
        if stoppedEarly {
            report(entry.path, "was not reached: reading stopped at an earlier error")
        } else {
            report(entry.path, "is in the record but missing from the archive")
        }
    }

    do {
        let stored = try context.finish()
        if stored.size != record.size {
            report(nil, "the stored object is \(stored.size) bytes but the record says \(record.size)")
        }
        if stored.sha256 != record.sha256 {
            report(nil, "SHA-256 mismatch of the stored object: the record says \(record.sha256), the object holds \(stored.sha256)")
        }
    } catch {
        report(nil, "unable to read the whole stored object: \(problemText(error))")
    }
    return problems
}

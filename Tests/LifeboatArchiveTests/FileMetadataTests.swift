import Foundation
import LifeboatArchive
import LifeboatCore
import Testing
import TestSupport

/// Builds an artifact of `source` and restores it into a new directory `restore` beside it;
/// checks that the artifact verifies on the way.
private func roundTrip(
    _ source: String, in temporary: TemporaryDirectory, compression: Compression = .zstd,
    exclude: PathPatterns = PathPatterns([])
) throws -> (artifact: BuiltArtifact, report: DirectoryArchiveReport, restore: String) {
    var report = DirectoryArchiveReport()
    let artifact = try buildArtifact(compression: compression) { writer in
        report = try archiveDirectory(root: source, into: writer, exclude: exclude)
    }
    #expect(verifyArtifact(artifact.record, source: artifact.reader()) == [])
    let restore = temporary.sub("restore")
    try FileManager.default.createDirectory(atPath: restore, withIntermediateDirectories: false)
    try extractArtifact(artifact.record, source: artifact.reader(), to: restore)
    return (artifact, report, restore)
}

private func record(_ artifact: BuiltArtifact, _ path: String) throws -> EntryRecord {
    try #require(artifact.record.entries.first { $0.path == path }, "no record of '\(path)'")
}

/// A user id and a group id that have no name on this machine.
private func unnamedIDs() throws -> (uid: uid_t, gid: gid_t) {
    var uid: uid_t = 4242
    while getpwuid(uid) != nil { uid += 1 }
    var gid: gid_t = 4343
    while getgrgid(gid) != nil { gid += 1 }
    return (uid, gid)
}

/// glibc's `makedev` (a macro Swift does not import).
private func deviceNumber(major: UInt32, minor: UInt32) -> dev_t {
    let major = UInt64(major), minor = UInt64(minor)
    return dev_t((major & 0xfff) << 8 | (major & ~0xfff) << 32 | (minor & 0xff) | (minor & ~0xff) << 12)
}

@Suite struct Owners {
    @Test func ownersAndGroupsSurviveARoundTripByIDAndName() throws {
        try #require(geteuid() == 0, "changing owners needs root; the tests run as root here and in CI")
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        try FileManager.default.createDirectory(atPath: source + "/owned-dir", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: source + "/named.txt", contents: Data("n".utf8)))
        #expect(FileManager.default.createFile(atPath: source + "/unnamed.txt", contents: Data("u".utf8)))
        // getpwnam and getgrgid return static storage: copy the names at once.
        let nobody = try #require(getpwnam("nobody")).pointee
        let nobodyName = String(cString: nobody.pw_name)
        let nobodyGroupName = String(cString: try #require(getgrgid(nobody.pw_gid)).pointee.gr_name)
        let unnamed = try unnamedIDs()
        #expect(chown(source + "/named.txt", nobody.pw_uid, nobody.pw_gid) == 0)
        #expect(chown(source + "/unnamed.txt", unnamed.uid, unnamed.gid) == 0)
        #expect(chown(source + "/owned-dir", unnamed.uid, nobody.pw_gid) == 0)

        let (artifact, _, restore) = try roundTrip(source, in: temporary)

        let named = try record(artifact, "named.txt")
        #expect(named.uid == nobody.pw_uid && named.gid == nobody.pw_gid)
        #expect(named.user == nobodyName)
        #expect(named.group == nobodyGroupName)
        let withoutNames = try record(artifact, "unnamed.txt")
        #expect(withoutNames.uid == unnamed.uid && withoutNames.gid == unnamed.gid)
        #expect(withoutNames.user == nil && withoutNames.group == nil)

        for path in ["named.txt", "unnamed.txt", "owned-dir"] {
            let before = try fileStatus(source + "/" + path)
            let after = try fileStatus(restore + "/" + path)
            #expect(after.st_uid == before.st_uid, "\(path)")
            #expect(after.st_gid == before.st_gid, "\(path)")
            #expect(after.st_mode == before.st_mode, "\(path)")
        }
    }

    @Test func anOwnerDifferingFromTheRecordIsReportedAndRefused() throws {
        var delivered = false
        var artifact = try buildArtifact(compression: .zstd) { writer in
            try writer.addFile(path: "f", size: 1, mode: 0o644, modificationTime: 0,
                               owner: EntryOwner(uid: 1000, gid: 1000, user: "alice", group: "staff")) { buffer in
                if delivered { return 0 }
                delivered = true
                buffer[0] = 1
                return 1
            }
        }
        artifact.record.entries[0].uid = 0
        let problems = verifyArtifact(artifact.record, source: artifact.reader())
        #expect(problems.count == 1)
        #expect(problems.first?.message.contains("is owned by alice(1000):staff(1000) in the archive") == true)
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let error = try #require(throws: LifeboatError.self) {
            try extractArtifact(artifact.record, source: artifact.reader(), to: temporary.path)
        }
        #expect(error.code == .integrity)
        #expect(error.message.contains("'f' is owned by"))
    }
}

@Suite struct HardLinks {
    /// `a`, with two more links `b` and `sub/c`, and an unrelated file `d`.
    private func makeLinkedTree(_ source: String) throws {
        try FileManager.default.createDirectory(atPath: source + "/sub", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: source + "/a", contents: Data(pseudoRandomBytes(5000, seed: 1))))
        #expect(link(source + "/a", source + "/b") == 0)
        #expect(link(source + "/a", source + "/sub/c") == 0)
        #expect(FileManager.default.createFile(atPath: source + "/d", contents: Data("d".utf8)))
    }

    @Test func linksComeBackAsOneFile() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        try makeLinkedTree(source)

        let (artifact, report, restore) = try roundTrip(source, in: temporary)

        #expect(report.entriesAdded == 5)
        let first = try record(artifact, "a")
        #expect(first.kind == .file && first.size == 5000)
        for path in ["b", "sub/c"] {
            let link = try record(artifact, path)
            #expect(link.kind == .hardlink, "\(path)")
            #expect(link.linkTarget == "a", "\(path)")
            #expect(link.size == 0, "\(path)")
        }
        let original = try fileStatus(restore + "/a")
        #expect(original.st_nlink == 3)
        for path in ["b", "sub/c"] {
            #expect(try fileStatus(restore + "/" + path).st_ino == original.st_ino, "\(path)")
        }
        #expect(try fileStatus(restore + "/d").st_nlink == 1)
        #expect(try fileContents(bytes: Array((restore + "/sub/c").utf8)) == pseudoRandomBytes(5000, seed: 1))
    }

    @Test func whenTheFirstPathIsExcludedTheNextOneHoldsTheData() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        try makeLinkedTree(source)

        let (artifact, _, restore) = try roundTrip(source, in: temporary, exclude: PathPatterns(["a"]))

        #expect(try record(artifact, "b").kind == .file)
        #expect(try record(artifact, "sub/c").linkTarget == "b")
        let kept = try fileStatus(restore + "/b")
        #expect(kept.st_nlink == 2)
        #expect(try fileStatus(restore + "/sub/c").st_ino == kept.st_ino)
        #expect(try fileContents(bytes: Array((restore + "/b").utf8)) == pseudoRandomBytes(5000, seed: 1))
    }

    @Test func aHardLinkMustNameAFileAddedBefore() throws {
        let sink = MemoryWriter()
        let writer = try ArtifactWriter(sink: sink, compression: .none)
        let error = try #require(throws: LifeboatError.self) {
            try writer.addHardLink(path: "b", target: "a", mode: 0o644, modificationTime: 0)
        }
        #expect(error.code == .internalError)
        writer.abort()
    }
}

@Suite struct SparseFiles {
    /// A 64 MiB file with two small data regions, and a 5 MiB file that is all hole.
    private func makeSparseFiles(_ source: String) throws -> [UInt8] {
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        let fd = open(source + "/disk.img", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw TestFailure("create disk.img: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        #expect(ftruncate(fd, 64 << 20) == 0)
        let first = pseudoRandomBytes(8192, seed: 11)
        let second = pseudoRandomBytes(3000, seed: 12)
        #expect(pwrite(fd, first, first.count, 4 << 20) == first.count)
        #expect(pwrite(fd, second, second.count, (50 << 20) + 123) == second.count)
        var logical = [UInt8](repeating: 0, count: 64 << 20)
        logical.replaceSubrange((4 << 20)..<((4 << 20) + first.count), with: first)
        logical.replaceSubrange(((50 << 20) + 123)..<((50 << 20) + 123 + second.count), with: second)
        let hole = open(source + "/hole.img", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #expect(hole >= 0)
        #expect(ftruncate(hole, 5 << 20) == 0)
        close(hole)
        return logical
    }

    @Test(arguments: Compression.allCases)
    func sparseFilesComeBackSparseAndIdentical(compression: Compression) throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        let logical = try makeSparseFiles(source)
        try #require(try fileStatus(source + "/disk.img").st_blocks * 512 < 1 << 20,
                     "the temporary directory's file system must support holes")

        let (artifact, _, restore) = try roundTrip(source, in: temporary, compression: compression)

        // Holes are not stored, even without compression.
        #expect(artifact.bytes.count < 1 << 20)
        let disk = try record(artifact, "disk.img")
        #expect(disk.size == 64 << 20)
        let regions = try #require(disk.sparseMap)
        #expect(regions.count == 2)
        #expect(regions.allSatisfy { $0.length < 1 << 20 })
        #expect(disk.sha256 == (try sha256sum(source + "/disk.img")))
        let hole = try record(artifact, "hole.img")
        #expect(hole.sparseMap == [])
        #expect(hole.size == 5 << 20)

        let restored = try fileStatus(restore + "/disk.img")
        #expect(restored.st_size == 64 << 20)
        #expect(restored.st_blocks * 512 < 1 << 20)
        #expect(restored.st_mode & 0o7777 == 0o640)
        #expect(try fileContents(bytes: Array((restore + "/disk.img").utf8)) == logical)
        let restoredHole = try fileStatus(restore + "/hole.img")
        #expect(restoredHole.st_size == 5 << 20)
        #expect(restoredHole.st_blocks == 0)
        #expect(try sha256sum(restore + "/hole.img") == (try sha256sum(source + "/hole.img")))
    }

    @Test func aSparseMapDifferingFromTheRecordIsReported() throws {
        var artifact = try buildArtifact(compression: .zstd) { writer in
            try writer.addSparseFile(path: "s", size: 1 << 20, dataRegions: [DataRegion(offset: 4096, length: 10)],
                                     mode: 0o644, modificationTime: 0) { buffer, offset in
                guard offset < 1 << 20 else { return 0 }
                for index in buffer.indices { buffer[index] = 7 }
                return buffer.count
            }
        }
        #expect(verifyArtifact(artifact.record, source: artifact.reader()) == [])
        artifact.record.entries[0].sparseMap = [DataRegion(offset: 0, length: 10)]
        let problems = verifyArtifact(artifact.record, source: artifact.reader())
        #expect(problems.map(\.message) == [
            "has a sparse map of 1 data region [4096+10] in the archive but a sparse map of 1 data region [0+10] in the record",
        ])
    }
}

@Suite struct RawNames {
    @Test func namesThatAreNotUTF8SurviveByteForByte() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        let root = Array(source.utf8) + [UInt8(ascii: "/")]
        let invalid: [UInt8] = [0x66, 0xff, 0x6f]  // "f", 0xff, "o"
        let sameDisplay: [UInt8] = [0x66, 0xfe, 0x6f]  // shown as "f\u{FFFD}o" too
        let latin1Directory: [UInt8] = [0x64, 0xe9]  // "dé" in Latin-1
        let nfc = Array("\u{e9}.txt".utf8), nfd = Array("e\u{301}.txt".utf8)  // equal as Swift strings
        try createFile(bytes: root + invalid, Array("one".utf8))
        try createFile(bytes: root + sameDisplay, Array("two".utf8))
        try createFile(bytes: root + nfc, Array("nfc".utf8))
        try createFile(bytes: root + nfd, Array("nfd".utf8))
        #expect(mkdir(cPath(root + latin1Directory), 0o755) == 0)
        try createFile(bytes: root + latin1Directory + Array("/x".utf8), Array("x".utf8))
        #expect(symlink(cPath(invalid), cPath(root + Array("link".utf8))) == 0)
        #expect(link(cPath(root + invalid), cPath(root + Array("hard".utf8) + [0xfe])) == 0)

        let (artifact, report, restore) = try roundTrip(source, in: temporary)

        #expect(report.skipped == [])
        let entry = try #require(artifact.record.entries.first { $0.rawPath == invalid })
        #expect(entry.path == "f\u{FFFD}o")
        #expect(entry.pathBytes == "Zv9v")
        let symlinkRecord = try record(artifact, "link")
        #expect(symlinkRecord.linkTarget == "f\u{FFFD}o" && symlinkRecord.linkTargetBytes == "Zv9v")
        let hardRecord = try #require(artifact.record.entries.first { $0.rawPath == Array("hard".utf8) + [0xfe] })
        #expect(hardRecord.kind == .hardlink && hardRecord.rawLinkTarget == invalid)
        #expect(artifact.record.entries.first { $0.rawPath == nfc }?.pathBytes == nil)

        #expect(try directoryNameBytes(restore) == directoryNameBytes(source))
        #expect(try directoryNameBytes(restore).count == 7)
        let restoreRoot = Array(restore.utf8) + [UInt8(ascii: "/")]
        #expect(try fileContents(bytes: restoreRoot + invalid) == Array("one".utf8))
        #expect(try fileContents(bytes: restoreRoot + sameDisplay) == Array("two".utf8))
        #expect(try fileContents(bytes: restoreRoot + nfc) == Array("nfc".utf8))
        #expect(try fileContents(bytes: restoreRoot + nfd) == Array("nfd".utf8))
        #expect(try fileContents(bytes: restoreRoot + latin1Directory + Array("/x".utf8)) == Array("x".utf8))
        var target = [CChar](repeating: 0, count: 64)
        let length = readlink(cPath(restoreRoot + Array("link".utf8)), &target, target.count)
        #expect(target[0..<max(length, 0)].map { UInt8(bitPattern: $0) } == invalid)
        #expect(try fileStatus(bytes: restoreRoot + Array("hard".utf8) + [0xfe]).st_ino
            == (try fileStatus(bytes: restoreRoot + invalid).st_ino))
    }
}

@Suite struct SpecialFiles {
    @Test func fifosAndDevicesSurviveARoundTrip() throws {
        try #require(geteuid() == 0, "creating devices needs root; the tests run as root here and in CI")
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        #expect(mkfifo(source + "/pipe", 0o640) == 0)
        #expect(mknod(source + "/null", S_IFCHR | 0o620, deviceNumber(major: 1, minor: 3)) == 0)
        #expect(mknod(source + "/loop", S_IFBLK | 0o600, deviceNumber(major: 7, minor: 300)) == 0)
        for path in ["pipe", "null", "loop"] { try setModificationTime(source + "/" + path, 1_600_000_000) }

        let (artifact, report, restore) = try roundTrip(source, in: temporary)

        #expect(report.skipped == [])
        #expect(try record(artifact, "pipe").kind == .fifo)
        let null = try record(artifact, "null")
        #expect(null.kind == .characterDevice && null.deviceMajor == 1 && null.deviceMinor == 3)
        let loop = try record(artifact, "loop")
        #expect(loop.kind == .blockDevice && loop.deviceMajor == 7 && loop.deviceMinor == 300)
        for path in ["pipe", "null", "loop"] {
            let before = try fileStatus(source + "/" + path)
            let after = try fileStatus(restore + "/" + path)
            #expect(after.st_mode == before.st_mode, "\(path)")
            #expect(after.st_rdev == before.st_rdev, "\(path)")
            #expect(after.st_mtim.tv_sec == 1_600_000_000, "\(path)")
        }
    }

    @Test func socketsAreSkippedAndReported() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: source + "/keep", contents: Data("k".utf8)))
        let socketPath = source + "/control.sock"
        let fd = try bindUnixSocket(at: socketPath)
        defer { close(fd) }

        var report = DirectoryArchiveReport()
        let artifact = try buildArtifact(compression: .zstd) { writer in
            report = try archiveDirectory(root: source, into: writer)
        }
        #expect(report.skipped == [SkippedEntry(path: socketPath, reason: .socket)])
        #expect(report.skipped.first?.description == "skipped socket '\(socketPath)'")
        #expect(report.entriesAdded == 1)
        #expect(artifact.record.entries.map(\.path) == ["keep"])
    }
}

import Foundation
import LifeboatArchive
import LifeboatCore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a small tree with files, directories, symbolic links and a FIFO.
private func makeTree(at root: String) throws -> [String: [UInt8]] {
    let manager = FileManager.default
    try manager.createDirectory(atPath: root, withIntermediateDirectories: true)
    let files: [(String, [UInt8], Int)] = [
        ("a.txt", Array("hello\n".utf8), 0o644),
        ("empty", [], 0o600),
        ("run.sh", Array("#!/bin/sh\necho hi\n".utf8), 0o755),
        ("sub/big.bin", pseudoRandomBytes(700_000, seed: 7), 0o640),
        ("sub/deep/note", Array("read only\n".utf8), 0o444),
        ("café ü.txt", Array("non-ASCII name\n".utf8), 0o644),
    ]
    try manager.createDirectory(atPath: root + "/sub/deep", withIntermediateDirectories: true)
    try manager.createDirectory(atPath: root + "/sub/empty-dir", withIntermediateDirectories: true)
    var contents: [String: [UInt8]] = [:]
    for (path, bytes, mode) in files {
        let full = root + "/" + path
        #expect(manager.createFile(atPath: full, contents: Data(bytes)))
        try manager.setAttributes([.posixPermissions: mode], ofItemAtPath: full)
        contents[path] = bytes
    }
    try manager.createSymbolicLink(atPath: root + "/link", withDestinationPath: "a.txt")
    try manager.createSymbolicLink(atPath: root + "/sub/dangling", withDestinationPath: "/nonexistent/target")
    #expect(mkfifo(root + "/pipe", 0o600) == 0)
    try manager.setAttributes([.posixPermissions: 0o750], ofItemAtPath: root + "/sub")
    try manager.setAttributes([.posixPermissions: 0o700], ofItemAtPath: root + "/sub/deep")
    // Fixed times, directories last (creating their contents changed them).
    let time = Date(timeIntervalSince1970: 1_600_000_000)
    for path in files.map(\.0) + ["sub/deep", "sub/empty-dir", "sub"] {
        try manager.setAttributes([.modificationDate: time], ofItemAtPath: root + "/" + path)
    }
    return contents
}

@Suite struct DirectoryRoundTrip {
    @Test(arguments: Compression.allCases)
    func filesDirectoriesAndLinksSurviveARoundTrip(compression: Compression) throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        _ = try makeTree(at: source)

        var report = DirectoryArchiveReport()
        let artifact = try buildArtifact(compression: compression) { writer in
            report = try archiveDirectory(root: source, into: writer)
        }
        #expect(report.skipped == [])
        #expect(report.entriesAdded == 12)
        #expect(artifact.record.entries.map(\.path) == [
            "a.txt", "café ü.txt", "empty", "link", "pipe", "run.sh", "sub", "sub/big.bin", "sub/dangling",
            "sub/deep", "sub/deep/note", "sub/empty-dir",
        ])
        #expect(artifact.record.entries.first { $0.path == "pipe" }?.kind == .fifo)
        let link = try #require(artifact.record.entries.first { $0.path == "link" })
        #expect(link.kind == .symlink)
        #expect(link.linkTarget == "a.txt")
        let big = try #require(artifact.record.entries.first { $0.path == "sub/big.bin" })
        #expect(big.size == 700_000)
        #expect(big.mode == 0o640)

        #expect(verifyArtifact(artifact.record, source: artifact.reader()) == [])

        let restore = temporary.sub("restore")
        try FileManager.default.createDirectory(atPath: restore, withIntermediateDirectories: false)
        try extractArtifact(artifact.record, source: artifact.reader(), to: restore)

        let expected = try snapshot(source)
        let restored = try snapshot(restore)
        #expect(restored.keys.sorted() == expected.keys.sorted())
        for (path, item) in expected {
            #expect(restored[path] == item, "\(path)")
        }
    }

    @Test func prefixNamesTheRootAndEveryPath() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        try FileManager.default.createDirectory(atPath: source + "/d", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: source + "/d/f", contents: Data("x".utf8)))

        let artifact = try buildArtifact(compression: .zstd) { writer in
            let report = try archiveDirectory(root: source, into: writer, prefix: "files/")
            #expect(report == DirectoryArchiveReport(entriesAdded: 3, skipped: []))
        }
        #expect(artifact.record.entries.map(\.path) == ["files", "files/d", "files/d/f"])
        #expect(artifact.record.entries.map(\.kind) == [.directory, .directory, .file])
    }

    @Test func sameTreeGivesTheSameArtifact() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        _ = try makeTree(at: source)
        let first = try buildArtifact(compression: .zstd) { _ = try archiveDirectory(root: source, into: $0) }
        let second = try buildArtifact(compression: .zstd) { _ = try archiveDirectory(root: source, into: $0) }
        #expect(first.record.sha256 == second.record.sha256)
        #expect(first.bytes == second.bytes)
    }

    @Test func readerReportsHeaders() throws {
        let artifact = try buildArtifact(compression: .zstd) { writer in
            try writer.addDirectory(path: "d", mode: 0o750, modificationTime: 1_000)
            try addMemoryFile(writer, path: "d/f", Array("abc".utf8), mode: 0o604, modificationTime: 2_000)
            try writer.addSymlink(path: "d/l", target: "f", modificationTime: 3_000)
        }
        let reader = try ArtifactReader(source: artifact.reader(), artifactPath: artifact.record.path)
        var headers: [ArchiveEntryHeader] = []
        while let header = try reader.nextEntry() {
            headers.append(header)
        }
        #expect(headers == [
            ArchiveEntryHeader(path: "d", kind: .directory, size: 0, mode: 0o750, modificationTime: 1_000),
            ArchiveEntryHeader(path: "d/f", kind: .file, size: 3, mode: 0o604, modificationTime: 2_000),
            ArchiveEntryHeader(path: "d/l", kind: .symlink, size: 0, mode: 0o777, modificationTime: 3_000,
                               linkTarget: "f"),
        ])
        let stored = try reader.finish()
        #expect(stored.size == artifact.record.size)
        #expect(stored.sha256 == artifact.record.sha256)
    }
}

@Suite struct ExtractionSafety {
    @Test(arguments: ["../evil.txt", "a/../../evil.txt", "ABSOLUTE"])
    func refusesPathsLeavingTheTarget(path: String) throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        // Every case aims at the same file, next to the restore directory.
        let escape = temporary.sub("evil.txt")
        let entryPath = path == "ABSOLUTE" ? escape : path
        let artifact = try buildArtifact(compression: .zstd) { writer in
            try addMemoryFile(writer, path: "fine.txt", Array("ok".utf8))
            try addMemoryFile(writer, path: entryPath, Array("gotcha".utf8))
        }
        let restore = temporary.sub("restore")
        try FileManager.default.createDirectory(atPath: restore, withIntermediateDirectories: false)
        let error = try #require(throws: LifeboatError.self) {
            try extractArtifact(artifact.record, source: artifact.reader(), to: restore)
        }
        #expect(error.message.contains(entryPath))
        #expect(error.message.contains(artifact.record.path))
        #expect(!FileManager.default.fileExists(atPath: escape))
    }

    @Test func refusesWritingThroughASymbolicLink() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let outside = temporary.sub("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: false)
        let artifact = try buildArtifact(compression: .zstd) { writer in
            try writer.addSymlink(path: "out", target: EntryPath(outside), modificationTime: 0)
            try addMemoryFile(writer, path: "out/evil.txt", Array("gotcha".utf8))
        }
        let restore = temporary.sub("restore")
        try FileManager.default.createDirectory(atPath: restore, withIntermediateDirectories: false)
        #expect(throws: LifeboatError.self) {
            try extractArtifact(artifact.record, source: artifact.reader(), to: restore)
        }
        #expect(!FileManager.default.fileExists(atPath: outside + "/evil.txt"))
    }

    @Test func refusesEntriesMissingFromTheRecord() throws {
        var artifact = try buildArtifact(compression: .zstd) { writer in
            try addMemoryFile(writer, path: "kept", Array("1".utf8))
            try addMemoryFile(writer, path: "smuggled", Array("2".utf8))
        }
        artifact.record.entries.removeAll { $0.path == "smuggled" }
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let error = try #require(throws: LifeboatError.self) {
            try extractArtifact(artifact.record, source: artifact.reader(), to: temporary.path)
        }
        #expect(error.code == .integrity)
        #expect(error.message.contains("'smuggled'"))
    }

    @Test func reportsRecordedEntriesThatAreMissing() throws {
        var artifact = try buildArtifact(compression: .none) { writer in
            try addMemoryFile(writer, path: "present", Array("1".utf8))
        }
        artifact.record.entries.append(EntryRecord(path: "absent", kind: .file, size: 1, sha256: "00"))
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let error = try #require(throws: LifeboatError.self) {
            try extractArtifact(artifact.record, source: artifact.reader(), to: temporary.path)
        }
        #expect(error.code == .integrity)
        #expect(error.message.contains("'absent'"))
    }

    @Test func detectsDamagedDataWhileExtracting() throws {
        let marker = Array(repeating: UInt8(ascii: "Q"), count: 3000)
        var artifact = try buildArtifact(compression: .none) { writer in
            try addMemoryFile(writer, path: "victim.dat", marker)
        }
        let offset = try #require(firstIndex(of: marker, in: artifact.bytes))
        artifact.bytes[offset + 1500] ^= 0x01
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let error = try #require(throws: LifeboatError.self) {
            try extractArtifact(artifact.record, source: artifact.reader(), to: temporary.path)
        }
        #expect(error.code == .integrity)
        #expect(error.message.contains("'victim.dat'"))
        #expect(error.message.contains(artifact.record.path))
    }
}

import Crypto
import Foundation
import LifeboatArchive
import LifeboatCore
import Testing

@Suite struct ManifestCompatibility {
    /// A manifest as Lifeboat wrote them before entries recorded owners, hard links, devices,
    /// sparse maps and raw names.
    static let oldManifest = """
        {"format":1,"policy":"etc","id":"20250101T000000Z",
         "source":{"kind":"files","files":{"path":"/etc/app","hostname":"db1"}},
         "startedAt":"2025-01-01T00:00:00Z","finishedAt":"2025-01-01T00:00:05Z",
         "tool":{"name":"lifeboat","version":"0.1.0"},
         "artifacts":[{"path":"data/0000.tar.zst","role":"files","size":123,"sha256":"ab","compression":"zstd",
           "encryption":"none","entries":[
             {"path":"conf.d","kind":"directory","size":0,"sha256":"e3","mode":493,"modificationTime":1700000000},
             {"path":"app.conf","kind":"file","size":5,"sha256":"cd","mode":420,"modificationTime":1700000000},
             {"path":"current","kind":"symlink","size":0,"sha256":"ef","modificationTime":1700000000,
              "linkTarget":"app.conf"}]}]}
        """

    @Test func manifestsWrittenBeforeTheNewFieldsStillDecode() throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let manifest = try decoder.decode(Manifest.self, from: Data(Self.oldManifest.utf8))
        #expect(manifest.source.kind == "files")
        #expect(manifest.source.details == .object(["path": .string("/etc/app"), "hostname": .string("db1")]))
        let entries = try #require(manifest.artifacts.first?.entries)
        #expect(entries.map(\.kind) == [.directory, .file, .symlink])
        for entry in entries {
            #expect(entry.pathBytes == nil && entry.linkTargetBytes == nil)
            #expect(entry.uid == nil && entry.gid == nil && entry.user == nil && entry.group == nil)
            #expect(entry.deviceMajor == nil && entry.deviceMinor == nil && entry.sparseMap == nil)
            #expect(entry.rawPath == Array(entry.path.utf8))
        }
        #expect(entries[2].rawLinkTarget == Array("app.conf".utf8))
    }

    @Test func recordsWithoutTheNewValuesEncodeWithoutTheirKeys() throws {
        let record = EntryRecord(path: "a", kind: .file, size: 1, sha256: "00", mode: 0o644, modificationTime: 0)
        let json = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        for key in ["pathBytes", "linkTargetBytes", "uid", "gid", "user", "group", "deviceMajor", "deviceMinor", "sparseMap"] {
            #expect(!json.contains("\"\(key)\""), "\(key)")
        }
    }

    @Test func newFieldsRoundTripThroughJSON() throws {
        let record = EntryRecord(
            path: "f\u{FFFD}o", pathBytes: "Zv9v", kind: .file, size: 10, sha256: "00", mode: 0o600, modificationTime: 1,
            uid: 1000, gid: 100, user: "alice", group: "users",
            sparseMap: [DataRegion(offset: 4096, length: 10)])
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(record), as: UTF8.self)
        #expect(json.contains("\"sparseMap\":[{\"length\":10,\"offset\":4096}]"))
        #expect(json.contains("\"uid\":1000") && json.contains("\"user\":\"alice\""))
        #expect(try JSONDecoder().decode(EntryRecord.self, from: Data(json.utf8)) == record)
        #expect(record.rawPath == [0x66, 0xff, 0x6f])
    }
}

/// GNU tar reads what Lifeboat writes as it reads its own archives.
@Suite struct GNUTarCompatibility {
    @Test func gnuTarListsHardLinksAndSparseFilesAsInItsOwnArchive() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let source = temporary.sub("source")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: source + "/data.bin", contents: Data(pseudoRandomBytes(10_000, seed: 3))))
        #expect(chmod(source + "/data.bin", 0o640) == 0)
        #expect(link(source + "/data.bin", source + "/data.link") == 0)
        let fd = open(source + "/sparse.img", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        #expect(ftruncate(fd, 8 << 20) == 0)
        let chunk = pseudoRandomBytes(4096, seed: 4)
        #expect(pwrite(fd, chunk, chunk.count, 1 << 20) == chunk.count)
        close(fd)
        for name in ["data.bin", "sparse.img"] { try setModificationTime(source + "/" + name, 1_700_000_000) }

        let artifact = try buildArtifact(compression: .zstd) { writer in
            _ = try archiveDirectory(root: source, into: writer)
        }
        #expect(try #require(artifact.record.entries.first { $0.path == "sparse.img" }).sparseMap?.count == 1)
        let compressed = temporary.sub("ours.tar.zst")
        try Data(artifact.bytes).write(to: URL(fileURLWithPath: compressed))
        let decompress = try runProgram("/usr/bin/zstd", ["-d", "-q", compressed, "-o", temporary.sub("ours.tar")])
        try #require(decompress.status == 0, "zstd -d: \(decompress.stderr)")

        let names = ["data.bin", "data.link", "sparse.img"]
        let reference = try runProgram("/usr/bin/tar", ["--format=pax", "--sparse", "-cf", temporary.sub("reference.tar"),
                                                        "-C", source] + names)
        try #require(reference.status == 0, "tar -c: \(reference.stderr)")
        let ours = try runProgram("/usr/bin/tar", ["-tvf", temporary.sub("ours.tar")])
        let theirs = try runProgram("/usr/bin/tar", ["-tvf", temporary.sub("reference.tar")])
        #expect(ours.status == 0)
        #expect(ours.stderr == "")
        #expect(ours.stdout == theirs.stdout)
        #expect(ours.stdout.contains("hrw-r----- "))
        #expect(ours.stdout.contains(" data.link link to data.bin\n"))
        #expect(ours.stdout.contains(" 8388608 "))

        // And GNU tar extracts it: the link shares the file, the sparse file keeps its holes.
        let out = temporary.sub("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let extract = try runProgram("/usr/bin/tar", ["-xf", temporary.sub("ours.tar"), "-C", out])
        try #require(extract.status == 0, "tar -x: \(extract.stderr)")
        #expect(try fileStatus(out + "/data.link").st_ino == (try fileStatus(out + "/data.bin").st_ino))
        let sparse = try fileStatus(out + "/sparse.img")
        #expect(sparse.st_size == 8 << 20)
        #expect(sparse.st_blocks * 512 < 1 << 20)
        #expect(try sha256sum(out + "/sparse.img") == (try sha256sum(source + "/sparse.img")))
        #expect(artifact.record.entries.first { $0.path == "sparse.img" }?.sha256 == (try sha256sum(source + "/sparse.img")))
    }
}

/// SHA-256 in lowercase hex.
private func sha256Hex(_ bytes: some DataProtocol) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// zstd with worker threads still writes one valid zstd stream, which our reader, `zstd -d`
/// and GNU tar read back, with every entry's SHA-256 and the stored bytes' SHA-256 right.
@Suite struct ThreadedCompression {
    @Test(arguments: [1, 2, 4])
    func threadedArtifactReadsBackEverywhere(threads: Int) throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        // More than one zstd job (several MiB each at level 3): text that compresses, then
        // random bytes that do not.
        let text = Array(String(repeating: "lifeboat threaded compression ", count: 600_000).utf8)
        let data = text + pseudoRandomBytes(3 << 20, seed: 9)
        let stream = ByteStream(data, piece: 65_536)
        let small = Array("CREATE ROLE x;\n".utf8)
        let key = "data/0000.tar.zst"
        let sink = MemoryWriter(key: key)
        let writer = try ArtifactWriter(sink: sink, compression: .zstd, threads: threads)
        try addMemoryFile(writer, path: "globals.sql", small)
        try writer.addStream(name: "database.dump", chunkSize: 4 << 20) { try stream.read(into: $0) }
        let result = try writer.finish()
        try sink.commit()
        #expect(result.size == Int64(sink.bytes.count))
        #expect(result.sha256 == sha256Hex(sink.bytes))
        let chunks = result.entries.filter { $0.stream == "database.dump" }
        #expect(chunks.count == (data.count + (4 << 20) - 1) / (4 << 20))
        for chunk in chunks {
            let start = (chunk.chunk ?? 0) * (4 << 20)
            #expect(chunk.sha256 == sha256Hex(data[start..<(start + Int(chunk.size))]))
        }

        let record = ArtifactRecord(path: key, role: ArtifactRole("postgres-database"), size: result.size,
                                    sha256: try #require(result.sha256), compression: .zstd, entries: result.entries)
        let artifact = BuiltArtifact(bytes: sink.bytes, record: record)
        var readBack: [UInt8] = []
        try readStream(record, source: artifact.reader(), stream: "database.dump") { readBack.append(contentsOf: $0) }
        #expect(readBack == data)
        #expect(verifyArtifact(record, source: artifact.reader()) == [])

        let compressed = temporary.sub("artifact.tar.zst")
        try Data(sink.bytes).write(to: URL(fileURLWithPath: compressed))
        let decompress = try runProgram("/usr/bin/zstd", ["-d", "-q", compressed, "-o", temporary.sub("artifact.tar")])
        try #require(decompress.status == 0, "zstd -d: \(decompress.stderr)")
        let out = temporary.sub("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let extract = try runProgram("/usr/bin/tar", ["-xf", temporary.sub("artifact.tar"), "-C", out])
        try #require(extract.status == 0, "tar -x: \(extract.stderr)")
        #expect(extract.stderr == "")
        for entry in result.entries {
            #expect(try sha256sum(out + "/" + entry.path) == entry.sha256)
        }
    }

    @Test func automaticThreadsFollowTheOnlineCPUs() {
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #expect(ArtifactWriter.compressionThreads(0) == max(1, min(online, ArtifactWriter.automaticCompressionThreadLimit)))
        #expect(ArtifactWriter.compressionThreads(3) == 3)
    }
}

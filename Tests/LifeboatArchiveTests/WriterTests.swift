import LifeboatArchive
import LifeboatCore
import Testing

@Suite struct Writer {
    @Test(arguments: [(declared: 20, actual: 10), (declared: 20, actual: 30), (declared: 0, actual: 1),
                      (declared: 300_000, actual: 299_999)])
    func fileThatChangesSizeIsRefused(declared: Int, actual: Int) throws {
        let sink = MemoryWriter()
        let writer = try ArtifactWriter(sink: sink, compression: .zstd)
        let contents = [UInt8](repeating: 7, count: actual)
        var offset = 0
        let error = try #require(throws: LifeboatError.self) {
            try writer.addFile(path: "grows.log", size: Int64(declared), mode: 0o644, modificationTime: 0) { buffer in
                let n = min(buffer.count, contents.count - offset)
                contents.withUnsafeBytes { source in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + n)]))
                }
                offset += n
                return n
            }
        }
        #expect(error.message.contains("file 'grows.log' changed size while being backed up: expected \(declared) bytes"))
        writer.abort()
    }

    @Test func failingFileReadPropagatesItsError() throws {
        let writer = try ArtifactWriter(sink: MemoryWriter(), compression: .none)
        var calls = 0
        #expect(throws: StreamFailure.self) {
            try writer.addFile(path: "f", size: 1 << 20, mode: 0o644, modificationTime: 0) { buffer in
                calls += 1
                if calls == 3 { throw StreamFailure() }
                return buffer.count
            }
        }
        writer.abort()
    }

    @Test(arguments: Compression.allCases)
    func sinkErrorIsRethrown(compression: Compression) throws {
        let sink = MemoryWriter(failAfter: 100_000)
        let writer = try ArtifactWriter(sink: sink, compression: compression)
        let error = try #require(throws: LifeboatError.self) {
            try addMemoryFile(writer, path: "noise.bin", pseudoRandomBytes(3 << 20, seed: 11))
            _ = try writer.finish()
        }
        #expect(error.code == .storage)
        #expect(error.message.contains("disk is full"))
        writer.abort()
    }

    @Test func abortWritesNothingMore() throws {
        let sink = MemoryWriter()
        let writer = try ArtifactWriter(sink: sink, compression: .zstd)
        try addMemoryFile(writer, path: "a", pseudoRandomBytes(10_000, seed: 5))
        let before = sink.bytes.count
        writer.abort()
        sink.abort()
        #expect(sink.bytes.count == before)
        #expect(sink.writesAfterEnd == 0)
        #expect(throws: LifeboatError.self) { try addMemoryFile(writer, path: "b", [1]) }
    }

    @Test func droppingAnUnfinishedWriterWritesNothingMore() throws {
        let sink = MemoryWriter()
        var writer: ArtifactWriter? = try ArtifactWriter(sink: sink, compression: .zstd)
        try addMemoryFile(try #require(writer), path: "a", pseudoRandomBytes(10_000, seed: 5))
        let before = sink.bytes.count
        writer = nil
        #expect(writer == nil)
        #expect(sink.bytes.count == before)
    }

    @Test(arguments: [1, 3, 19])
    func compressionLevels(level: Int) throws {
        let sink = MemoryWriter()
        let writer = try ArtifactWriter(sink: sink, compression: .zstd, level: level)
        try addMemoryFile(writer, path: "text", Array(String(repeating: "lifeboat ", count: 10_000).utf8))
        let result = try writer.finish()
        #expect(result.size < 10_000)
        #expect(result.sha256?.count == 64)
    }

    @Test(arguments: [1, 2, 4])
    func workerThreadsWriteTheSameEntries(threads: Int) throws {
        // Several zstd jobs (1 MiB each at level 3), of bytes that compress and bytes that do not.
        let content = (0..<(3 << 20)).map { UInt8($0 % 7) } + pseudoRandomBytes(1 << 20, seed: UInt64(threads))
        let sink = MemoryWriter()
        let writer = try ArtifactWriter(sink: sink, compression: .zstd, threads: threads)
        try addMemoryFile(writer, path: "data", content)
        try addMemoryFile(writer, path: "small", [1, 2, 3])
        let result = try writer.finish()
        #expect(result.size == Int64(sink.bytes.count))
        #expect(result.sha256 == SigV4.sha256Hex(sink.bytes))
        #expect(result.entries.map(\.sha256) == [SigV4.sha256Hex(content), SigV4.sha256Hex([1, 2, 3])])
        let reader = try ArtifactReader(source: MemoryReader(sink.bytes, key: "threads.tar.zst"), artifactPath: "threads.tar.zst")
        var read: [String: [UInt8]] = [:]
        while let header = try reader.nextEntry() {
            var bytes: [UInt8] = []
            let content = try reader.readLogicalContent { chunk, _ in bytes += chunk }
            #expect(content.sha256 == SigV4.sha256Hex(bytes))
            read[header.path] = bytes
        }
        #expect(read == ["data": content, "small": [1, 2, 3]])
        #expect(try reader.finish().sha256 == result.sha256)
    }

    @Test(arguments: [-1, 0, Compression.maximumThreads + 1])
    func outOfRangeWorkerThreadsAreRefused(threads: Int) {
        #expect(throws: LifeboatError.self) {
            _ = try ArtifactWriter(sink: MemoryWriter(), compression: .zstd, threads: threads)
        }
    }

    @Test func storedBytesAreHashedOnlyWhenAsked() throws {
        let content = Array(String(repeating: "lifeboat ", count: 10_000).utf8)
        var digests: [String?] = []
        var stored: [[UInt8]] = []
        for hashes in [true, false] {
            let sink = MemoryWriter()
            let writer = try ArtifactWriter(sink: sink, compression: .zstd, hashesStoredBytes: hashes)
            try addMemoryFile(writer, path: "text", content)
            let result = try writer.finish()
            #expect(result.size == Int64(sink.bytes.count))
            digests.append(result.sha256)
            stored.append(sink.bytes)
        }
        #expect(stored[0] == stored[1])
        #expect(digests[0] == SigV4.sha256Hex(stored[0]))
        #expect(digests[1] == nil)
    }

    @Test(arguments: [0, 23, -1])
    func invalidCompressionLevelIsRefused(level: Int) {
        #expect(throws: LifeboatError.self) {
            _ = try ArtifactWriter(sink: MemoryWriter(), compression: .zstd, level: level)
        }
    }

    @Test func uncompressedArtifactIsNotPaddedToTenKibibytes() throws {
        let artifact = try buildArtifact(compression: .none) { writer in
            try addMemoryFile(writer, path: "a", [1, 2, 3])
        }
        // Header, one data block, two end-of-archive blocks.
        #expect(artifact.bytes.count == 4 * 512)
    }
}

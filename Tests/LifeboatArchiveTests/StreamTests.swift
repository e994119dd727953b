import LifeboatArchive
import LifeboatCore
import Testing

/// Reads a whole stream back.
private func readBack(_ artifact: BuiltArtifact, stream: String) throws -> [UInt8] {
    var result: [UInt8] = []
    try readStream(artifact.record, source: artifact.reader(), stream: stream) { bytes in
        result.append(contentsOf: bytes)
    }
    return result
}

@Suite struct Streams {
    struct Case: Sendable, CustomTestStringConvertible {
        var length: Int
        var chunks: Int
        var piece: Int
        var testDescription: String { "\(length) bytes in pieces of \(piece) → \(chunks) chunks" }
    }

    @Test(arguments: [
        Case(length: 10_500, chunks: 11, piece: 333),
        Case(length: 10_500, chunks: 11, piece: 100_000),
        Case(length: 0, chunks: 1, piece: 4096),
        Case(length: 999, chunks: 1, piece: 1),
        Case(length: 1000, chunks: 1, piece: 4096),
        Case(length: 2000, chunks: 2, piece: 7),
    ], Compression.allCases)
    func streamIsCutIntoChunksAndReadBack(_ test: Case, compression: Compression) throws {
        let data = pseudoRandomBytes(test.length, seed: UInt64(test.length + 1))
        let stream = ByteStream(data, piece: test.piece)
        let artifact = try buildArtifact(compression: compression, role: "postgres-database") { writer in
            try writer.addStream(name: "app.dump", chunkSize: 1000) { try stream.read(into: $0) }
        }
        let entries = artifact.record.entries
        #expect(entries.count == test.chunks)
        for (index, entry) in entries.enumerated() {
            #expect(entry.path == "app.dump." + String(repeating: "0", count: 6 - String(index).count) + String(index))
            #expect(entry.stream == "app.dump")
            #expect(entry.chunk == index)
            #expect(entry.kind == .file)
        }
        #expect(entries.first?.path == "app.dump.000000")
        #expect(entries.reduce(0) { $0 + $1.size } == Int64(test.length))
        #expect(entries.dropLast().allSatisfy { $0.size == 1000 })

        #expect(try readBack(artifact, stream: "app.dump") == data)
        #expect(verifyArtifact(artifact.record, source: artifact.reader()) == [])
    }

    @Test func streamsAndFilesShareAnArtifact() throws {
        let first = pseudoRandomBytes(5_500, seed: 1)
        let second = pseudoRandomBytes(2_100, seed: 2)
        let firstStream = ByteStream(first)
        let secondStream = ByteStream(second)
        let artifact = try buildArtifact(compression: .zstd) { writer in
            try addMemoryFile(writer, path: "globals.sql", Array("CREATE ROLE x;".utf8))
            try writer.addStream(name: "one", chunkSize: 1000) { try firstStream.read(into: $0) }
            try writer.addStream(name: "two", chunkSize: 1000) { try secondStream.read(into: $0) }
        }
        #expect(try readBack(artifact, stream: "one") == first)
        #expect(try readBack(artifact, stream: "two") == second)
        #expect(throws: LifeboatError.self) { try readBack(artifact, stream: "three") }
    }

    @Test func corruptChunkIsNeverHandedOn() throws {
        let data = [UInt8](repeating: UInt8(ascii: "A"), count: 1000)
            + [UInt8](repeating: UInt8(ascii: "B"), count: 1000)
            + [UInt8](repeating: UInt8(ascii: "C"), count: 1000)
        let stream = ByteStream(data)
        var artifact = try buildArtifact(compression: .none) { writer in
            try writer.addStream(name: "dump", chunkSize: 1000) { try stream.read(into: $0) }
        }
        let offset = try #require(firstIndex(of: [UInt8](repeating: UInt8(ascii: "B"), count: 1000), in: artifact.bytes))
        artifact.bytes[offset + 500] = UInt8(ascii: "b")

        var received: [UInt8] = []
        let error = try #require(throws: LifeboatError.self) {
            try readStream(artifact.record, source: artifact.reader(), stream: "dump") { bytes in
                received.append(contentsOf: bytes)
            }
        }
        #expect(error.code == .integrity)
        #expect(error.message.contains("dump.000001"))
        #expect(received == [UInt8](repeating: UInt8(ascii: "A"), count: 1000))
    }

    @Test func chunksOutOfOrderOrMissingAreRefused() throws {
        // The archive holds chunks 0 and 2; the record says there are three.
        var artifact = try buildArtifact(compression: .zstd) { writer in
            try addMemoryFile(writer, path: "dump.000000", Array("zero".utf8))
            try addMemoryFile(writer, path: "dump.000002", Array("two".utf8))
        }
        artifact.record.entries[0].stream = "dump"
        artifact.record.entries[0].chunk = 0
        artifact.record.entries[1].stream = "dump"
        artifact.record.entries[1].chunk = 2
        artifact.record.entries.append(EntryRecord(
            path: "dump.000001", kind: .file, size: 3, sha256: "00", stream: "dump", chunk: 1))
        var received: [UInt8] = []
        let error = try #require(throws: LifeboatError.self) {
            try readStream(artifact.record, source: artifact.reader(), stream: "dump") { received.append(contentsOf: $0) }
        }
        #expect(error.code == .integrity)
        #expect(error.message.contains("dump.000002"))
        #expect(received == Array("zero".utf8))
    }

    @Test func failingSourcePropagatesItsError() throws {
        let stream = ByteStream(pseudoRandomBytes(10_000, seed: 3), piece: 300, failAt: 2500)
        let sink = MemoryWriter()
        let writer = try ArtifactWriter(sink: sink, compression: .zstd)
        #expect(throws: StreamFailure.self) {
            try writer.addStream(name: "dump", chunkSize: 1000) { try stream.read(into: $0) }
        }
        // A half-written archive cannot be finished.
        #expect(throws: LifeboatError.self) { try writer.finish() }
        writer.abort()
    }
}

import Foundation
import LifeboatArchive
import LifeboatCore
import TestSupport
import Testing

/// Generative fuzzing of artifact reading: artifacts written by `ArtifactWriter` (every kind
/// of entry, plain and zstd), mutated, then verified, streamed and extracted. Each input must
/// be read or refused with a `LifeboatError`, within the time limit, and an extraction never
/// writes beside its restore directory. `LIFEBOAT_FUZZ_ITERATIONS` runs longer (see
/// `Fuzz`).
@Suite(.serialized) struct ArchiveFuzzing {
    static func seeds() throws -> [BuiltArtifact] {
        try Compression.allCases.map { compression in
            try buildArtifact(compression: compression) { writer in
                try writer.addDirectory(path: "d", mode: 0o750, modificationTime: 1_000)
                try addMemoryFile(writer, path: "d/f", Array("hello, world\n".utf8))
                try writer.addSymlink(path: "d/l", target: "f", modificationTime: 2_000)
                try writer.addHardLink(path: "d/h", target: "d/f", mode: 0o644, modificationTime: 1_700_000_000)
                try writer.addSpecialFile(path: "d/p", kind: .fifo, mode: 0o600, modificationTime: 3_000)
                try addMemoryFile(writer, path: EntryPath(bytes: [0x64, 0x2f, 0xff, 0xfe]).description, Array(repeating: 7, count: 700))
                let data = Array("region".utf8)
                try writer.addSparseFile(path: "d/sparse", size: 1 << 16, dataRegions: [DataRegion(offset: 4096, length: Int64(data.count))],
                                         mode: 0o644, modificationTime: 4_000) { buffer, offset in
                    let start = Int(offset) - 4096
                    let n = min(buffer.count, data.count - start)
                    guard n > 0 else { return 0 }
                    data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<(start + n)])) }
                    return n
                }
                let stream = ByteStream(pseudoRandomBytes(3000, seed: 1))
                try writer.addStream(name: "dump", chunkSize: 1024) { try stream.read(into: $0) }
            }
        }
    }

    static let tarTokens: [[UInt8]] = [
        "ustar\u{0}00", "ustar  \u{0}", "././@LongLink", "././@PaxHeader", "../", "/", "./", "\u{0}", "L", "K", "x", "g",
        "S", "1", "2", "5", "6", "3", "4", "7", "path=", "linkpath=", "size=", "GNU.sparse.map=", "GNU.sparse.realsize=",
        "GNU.sparse.major=1\n", "SCHILY.xattr.", "LIBARCHIVE.", "99999999999 ", "\u{80}\u{ff}\u{ff}\u{ff}",
    ].map { Array($0.utf8) }

    @Test func mutatedArtifactsAreReadOrRefused() throws {
        let built = try Self.seeds()
        let records = Dictionary(uniqueKeysWithValues: built.map { ($0.record.compression, $0.record) })
        let report = Fuzz.run("artifact", seeds: built.map(\.bytes), dictionary: Self.tarTokens, iterations: 300,
                              timeLimit: .seconds(5),  // five passes over each input, two of them extractions
                              accept: { $0 is LifeboatError }) { input in
            let compression: Compression = input.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) ? .zstd : .none
            let record = records[compression]!
            // Verification never throws; it reads every byte it can.
            _ = verifyArtifact(record, source: MemoryReader(input, key: record.path, readSize: 4096))
            // The stream, as a logical restore reads it.
            var streamed = 0
            do {
                try readStream(record, source: MemoryReader(input, key: record.path), stream: "dump") { streamed += $0.count }
            } catch let error as LifeboatError {
                _ = error
            }
            // Extraction, against the record the writer made and against one that lists
            // whatever the headers say.
            for candidate in [record, recordListingHeaders(of: input, path: record.path)] {
                let arena = try RestoreArena()
                defer { arena.remove() }
                do {
                    try extractArtifact(candidate, source: MemoryReader(input, key: record.path), to: arena.restore)
                } catch let error as LifeboatError {
                    guard !error.message.isEmpty else { throw FuzzFinding("an extraction error without a message") }
                }
                try arena.expectUntouched()
            }
        }
        #expect(report.failures.isEmpty, "\(report)")
    }

    /// A snapshot listing as an S3 mirror stores it: JSON lines in one zstd-compressed tar
    /// entry, read back as `SnapshotListingReader` reads it (entry, lines, codec).
    @Test func mutatedSnapshotListingsAreReadOrRefused() throws {
        let blob = BlobAddress(sha256: [UInt8](repeating: 0x3a, count: 32))
        var lines: [UInt8] = []
        for index in 0..<40 {
            lines += MirrorListingCodec.encode(MirrorEntry(
                key: Array("photos/\(index).jpg".utf8), size: Int64(index * 1000), etag: "\"e\(index)\"", modified: 1_764_444_444_123,
                contentType: index % 2 == 0 ? "image/jpeg" : nil, metadata: [MirrorHeader("owner", "ann")], blob: blob)) + [0x0a]
        }
        // zstd as stored, and plain, so that mutations reach the tar and the lines too.
        let artifacts = try Compression.allCases.map { compression in
            try buildArtifact(compression: compression, role: "s3-listing") { writer in
                try addMemoryFile(writer, path: "listing.jsonl", lines)
            }
        }
        let artifact = artifacts[0]
        let report = Fuzz.run("snapshot-listing", seeds: artifacts.map(\.bytes), dictionary: Self.tarTokens + [Array("{\"key\":".utf8), [0x0a]],
                              iterations: 600, accept: { $0 is LifeboatError }) { input in
            let reader = try ArtifactReader(source: MemoryReader(input, key: artifact.record.path, readSize: 1000),
                                            artifactPath: artifact.record.path)
            guard try reader.nextEntry() != nil else { return }
            var content: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                if n == 0 { break }
                content += buffer[0..<n]
                guard content.count <= 1 << 20 else { throw FuzzFinding("more listing than was written") }
            }
            for line in content.split(separator: 0x0a) { _ = try MirrorListingCodec.decode(line) }
            _ = try reader.finish()
        }
        #expect(report.failures.isEmpty, "\(report)")
    }
}

/// A property a fuzzed input broke (not a refusal).
struct FuzzFinding: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

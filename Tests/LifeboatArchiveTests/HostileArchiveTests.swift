import Crypto
import Foundation
import LifeboatArchive
import LifeboatCore
import TestSupport
import Testing

/// Tar archives written by hand, header by header, as a hostile repository could hold them:
/// no writer's checks stand between them and the reader.
enum HandTar {
    /// A 512-byte ustar header. `size` overrides the size field's 12 bytes (base-256, garbage).
    static func header(_ name: String, type: Character = "0", size: Int = 0, rawSize: [UInt8]? = nil, link: String = "",
                       mode: Int = 0o644, device: (major: Int, minor: Int) = (0, 0)) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int, width: Int) {
            for (index, byte) in bytes.prefix(width).enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: Int, at offset: Int, width: Int) {
            let digits = String(value, radix: 8)
            put(Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8), at: offset, width: width - 1)
        }
        put(Array(name.utf8), at: 0, width: 100)
        octal(mode, at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        if let rawSize { put(rawSize, at: 124, width: 12) } else { octal(size, at: 124, width: 12) }
        octal(1_700_000_000, at: 136, width: 12)
        block[156] = type.asciiValue!
        put(Array(link.utf8), at: 157, width: 100)
        put(Array("ustar\u{0}00".utf8), at: 257, width: 8)
        octal(device.major, at: 329, width: 8)
        octal(device.minor, at: 337, width: 8)
        put([UInt8](repeating: 0x20, count: 8), at: 148, width: 8)
        let sum = block.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(Array((String(repeating: "0", count: 6 - digits.count) + digits).utf8) + [0, 0x20], at: 148, width: 8)
        return block
    }

    /// An old GNU sparse file ('S'): `stored` bytes of data at offset 0, then a hole up to
    /// `realSize` (base-256, so it may be absurd).
    static func gnuSparse(_ name: String, stored: Int, realSize: UInt64) -> [UInt8] {
        var block = header(name, type: "S", size: stored)
        func put(_ bytes: [UInt8], at offset: Int) { for (index, byte) in bytes.enumerated() { block[offset + index] = byte } }
        put(Array("ustar  \u{0}".utf8), at: 257)
        func octal(_ value: Int, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: width - 1 - digits.count) + digits).utf8) + [0]
        }
        put(octal(0, width: 12) + octal(stored, width: 12), at: 386)  // one region: offset 0, `stored` bytes
        put([0x80, 0, 0, 0] + withUnsafeBytes(of: realSize.bigEndian, Array.init), at: 483)
        put([UInt8](repeating: 0x20, count: 8), at: 148)
        let sum = block.reduce(0) { $0 + Int($1) }
        put(octal(sum, width: 7) + [0x20], at: 148)
        return block
    }

    /// Data padded to whole blocks.
    static func data(_ bytes: [UInt8]) -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
    }

    static func entry(_ name: String, type: Character = "0", contents: [UInt8] = [], link: String = "") -> [UInt8] {
        header(name, type: type, size: contents.count, link: link) + data(contents)
    }

    /// A pax extended header ('x') holding `records` ("path=…").
    static func pax(_ records: [String]) -> [UInt8] {
        var body: [UInt8] = []
        for record in records {
            var length = record.utf8.count + 3
            while "\(length) \(record)\n".utf8.count != length { length += 1 }
            body += Array("\(length) \(record)\n".utf8)
        }
        return header("././@PaxHeader", type: "x", size: body.count) + data(body)
    }

    static let end = [UInt8](repeating: 0, count: 1024)
}

/// A record that lists every entry as the reader sees its header (data digests unknown), so
/// that only extraction's own checks, and the data's, can refuse a hostile entry.
func recordListingHeaders(of bytes: [UInt8], path: String = "data/0000.tar") -> ArtifactRecord {
    var entries: [EntryRecord] = []
    if let reader = try? ArtifactReader(source: MemoryReader(bytes, key: path), artifactPath: path) {
        while let header = try? reader.nextEntry() {
            let digest = header.rawLinkTarget.map { SHA256.hash(data: $0.bytes).map { String(format: "%02x", $0) }.joined() } ?? String(repeating: "0", count: 64)
            let (display, base64) = RecordedName.encode(header.rawPath.bytes)
            entries.append(EntryRecord(
                path: display, pathBytes: base64, kind: header.kind, size: header.size, sha256: digest, mode: header.mode,
                modificationTime: header.modificationTime, linkTarget: header.linkTarget,
                deviceMajor: header.device?.major, deviceMinor: header.device?.minor, sparseMap: header.dataRegions))
        }
    }
    return ArtifactRecord(path: path, role: "files", size: Int64(bytes.count), sha256: "00", compression: .none, entries: entries)
}

/// A restore directory with a sentinel directory beside it: what a hostile archive must
/// never reach.
struct RestoreArena {
    let temporary: TemporaryDirectory
    let restore: String
    let sentinel: String

    init() throws {
        temporary = try TemporaryDirectory()
        restore = temporary.sub("restore")
        sentinel = temporary.sub("sentinel")
        try FileManager.default.createDirectory(atPath: restore, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: sentinel, withIntermediateDirectories: false)
        try createFile(bytes: Array((sentinel + "/precious.txt").utf8), Array("precious".utf8))
    }

    /// Nothing beside the restore directory changed: only `restore` and `sentinel`, and the
    /// sentinel as it was.
    func expectUntouched(_ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try directoryNameBytes(temporary.path) == [Array("restore".utf8), Array("sentinel".utf8)], comment, sourceLocation: sourceLocation)
        let sentinelTree = try snapshot(sentinel)
        #expect(Array(sentinelTree.keys) == ["precious.txt"], comment, sourceLocation: sourceLocation)
        #expect(sentinelTree["precious.txt"]?.contents == Array("precious".utf8), comment, sourceLocation: sourceLocation)
        #expect(try fileStatus(sentinel + "/precious.txt").st_nlink == 1, comment, sourceLocation: sourceLocation)
    }

    func remove() { temporary.remove() }
}

/// Existing cases elsewhere: `../` and absolute paths, a symbolic link to an absolute path
/// outside then a file through it (`ExtractionSafety`), hard links leaving the target or
/// naming what is not an earlier file (`HardLinkSafety`), devices refused when not root
/// (`extractArtifact`'s documentation; `FileMetadata` round trips FIFOs and devices). These
/// add the hand-written ones a writer cannot produce.
@Suite struct HostileArchives {
    enum Case: String, CaseIterable, Sendable {
        case dotDotThroughALongName
        case absoluteThroughAPaxPath
        case relativeSymlinkOutThenAFileThroughIt
        case symlinkReplacingAnEmptyDirectoryMidArchive
        case symlinkReplacingADirectoryThroughDotSlash
        case hardLinkOutThroughALongLink
        case hugeDeclaredSize
        case hugeBase256Size
        case negativeBase256Size
        case garbageSize
        case paxRecordOfAbsurdLength
        case paxHeaderOfAbsurdSize
        case longNameOfAbsurdSize
        case longNameLoop
        case fifoAndDevice

        /// The archive, and the entry the refusal must name (nil: the archive may extract).
        var archive: (bytes: [UInt8], names: String?) {
            switch self {
            case .dotDotThroughALongName:
                return (HandTar.entry("././@LongLink", type: "L", contents: Array("a/../../sentinel/evil.txt\u{0}".utf8))
                    + HandTar.entry("short", contents: Array("gotcha".utf8)) + HandTar.end, "a/../../sentinel/evil.txt")
            case .absoluteThroughAPaxPath:
                return (HandTar.pax(["path=/tmp/lifeboat-hostile-absolute.txt"]) + HandTar.entry("short", contents: Array("gotcha".utf8))
                    + HandTar.end, "/tmp/lifeboat-hostile-absolute.txt")
            case .relativeSymlinkOutThenAFileThroughIt:
                return (HandTar.entry("link", type: "2", link: "../sentinel")
                    + HandTar.entry("link/evil.txt", contents: Array("gotcha".utf8)) + HandTar.end, "link/evil.txt")
            case .symlinkReplacingAnEmptyDirectoryMidArchive:
                return (HandTar.entry("d/", type: "5") + HandTar.entry("d/", type: "2", link: "../sentinel")
                    + HandTar.entry("d/evil.txt", contents: Array("gotcha".utf8)) + HandTar.end, "d")
            case .symlinkReplacingADirectoryThroughDotSlash:
                return (HandTar.entry("d/", type: "5") + HandTar.entry("./d", type: "2", link: "../sentinel")
                    + HandTar.entry("d/evil.txt", contents: Array("gotcha".utf8)) + HandTar.end, "d")
            case .hardLinkOutThroughALongLink:
                return (HandTar.entry("././@LongLink", type: "K", contents: Array("../sentinel/precious.txt\u{0}".utf8))
                    + HandTar.entry("evil", type: "1", link: "x") + HandTar.end, "evil")
            case .hugeDeclaredSize:
                return (HandTar.header("big", size: 0o77777777777) + HandTar.data(Array("only this".utf8)) + HandTar.end, "big")
            case .hugeBase256Size:
                return (HandTar.header("big", rawSize: [0x80] + [UInt8](repeating: 0xff, count: 11)) + HandTar.data(Array("x".utf8))
                    + HandTar.end, nil)
            case .negativeBase256Size:
                return (HandTar.header("neg", rawSize: [UInt8](repeating: 0xff, count: 12)) + HandTar.data(Array("x".utf8)) + HandTar.end, nil)
            case .garbageSize:
                return (HandTar.header("odd", rawSize: Array("9x9-1 \u{0}zz\u{1}\u{2}\u{3}".utf8)) + HandTar.data(Array("x".utf8)) + HandTar.end, nil)
            case .paxRecordOfAbsurdLength:
                let body = Array("99999999999999999 path=evil\n".utf8)
                return (HandTar.header("././@PaxHeader", type: "x", size: body.count) + HandTar.data(body)
                    + HandTar.entry("short", contents: Array("x".utf8)) + HandTar.end, nil)
            case .paxHeaderOfAbsurdSize:
                return (HandTar.header("././@PaxHeader", type: "x", size: 0o77777777777) + HandTar.data(Array("30 path=evil\n".utf8))
                    + HandTar.end, nil)
            case .longNameOfAbsurdSize:
                return (HandTar.header("././@LongLink", type: "L", size: 0o77777777777) + HandTar.data(Array("evil".utf8))
                    + HandTar.end, nil)
            case .longNameLoop:
                var bytes: [UInt8] = []
                for index in 0..<20_000 { bytes += HandTar.entry("././@LongLink", type: "L", contents: Array("loop-\(index)\u{0}".utf8)) }
                return (bytes + HandTar.entry("short", contents: Array("x".utf8)) + HandTar.end, nil)
            case .fifoAndDevice:
                return (HandTar.entry("pipe", type: "6") + HandTar.header("null", type: "3", mode: 0o666, device: (1, 3))
                    + HandTar.end, geteuid() == 0 ? nil : "null")
            }
        }
    }

    @Test(arguments: Case.allCases)
    func aHostileArchiveNeverWritesOutsideTheRestoreDirectory(_ hostile: Case) throws {
        let arena = try RestoreArena()
        defer { arena.remove() }
        let (bytes, names) = hostile.archive
        let record = recordListingHeaders(of: bytes)
        var outcome: Result<Void, any Error> = .success(())
        let clock = ContinuousClock()
        var elapsed = Duration.zero
        let growth = Fuzz.memoryGrowth {
            elapsed = clock.measure {
                outcome = Result { try extractArtifact(record, source: MemoryReader(bytes, key: record.path), to: arena.restore) }
            }
        }
        try arena.expectUntouched("\(hostile)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/lifeboat-hostile-absolute.txt"))
        #expect(elapsed < .seconds(5), "\(hostile) took \(elapsed)")
        #expect(growth.peak < 256 << 20 && growth.heap < 256 << 20, "\(hostile) grew memory by \(growth)")
        switch outcome {
        case .success:
            // Whatever was extracted is inside, and refusing was not required.
            #expect(names == nil || hostile == .fifoAndDevice, "\(hostile) was extracted")
        case .failure(let error):
            let lifeboatError = try #require(error as? LifeboatError, "\(hostile): \(error)")
            #expect(!lifeboatError.message.isEmpty)
            #expect(lifeboatError.message.contains(record.path), "\(hostile): \(lifeboatError.message)")
            if let names {
                #expect(lifeboatError.message.contains("'\(names)"), "\(hostile): \(lifeboatError.message)")
            }
        }
        // Verification reads the same bytes without writing anything, and does not throw.
        _ = verifyArtifact(record, source: MemoryReader(bytes, key: record.path))
    }

    /// A stream's chunk may be up to 1 GiB, and is checked whole before it is handed on; a
    /// record and a header that declare 1 GiB over a few bytes of data must not make restore
    /// allocate the gibibyte before finding the data missing.
    @Test func aStreamChunkDeclaringAGibibyteIsNotAllocatedBeforeItsBytesArrive() throws {
        let bytes = HandTar.header("dump.000000", size: 1 << 30) + HandTar.data(Array("only this".utf8)) + HandTar.end
        var record = recordListingHeaders(of: bytes)
        record.entries = record.entries.map { entry in
            var chunk = entry
            chunk.stream = "dump"
            chunk.chunk = 0
            return chunk
        }
        #expect(record.entries.first?.size == 1 << 30)
        var outcome: Result<Void, any Error> = .success(())
        let growth = Fuzz.memoryGrowth {
            outcome = Result { try readStream(record, source: MemoryReader(bytes, key: record.path), stream: "dump") { _ in } }
        }
        #expect(growth.peak < 128 << 20 && growth.heap < 128 << 20, "memory grew by \(growth)")
        let error = try #require(outcome.failure as? LifeboatError)
        #expect(error.message.contains("'dump.000000'"), "\(error.message)")
    }

    /// A sparse file whose header declares a hole of a pebibyte, in an archive whose record
    /// says otherwise: verification reports the difference without hashing the hole.
    @Test func verifyingASparseEntryWithAHugeHoleDoesNotHashIt() throws {
        let bytes = HandTar.gnuSparse("holes", stored: 512, realSize: 1 << 50) + HandTar.data([UInt8](repeating: 1, count: 512))
            + HandTar.end
        let record = ArtifactRecord(
            path: "data/0000.tar", role: "files", size: Int64(bytes.count), sha256: "00", compression: .none,
            entries: [EntryRecord(path: "holes", kind: .file, size: 512, sha256: "00")])
        let clock = ContinuousClock()
        var problems: [VerificationProblem] = []
        let elapsed = clock.measure { problems = verifyArtifact(record, source: MemoryReader(bytes, key: record.path)) }
        #expect(elapsed < .seconds(2))
        #expect(problems.contains { $0.entry == "holes" && $0.message.contains("\(1 << 50) bytes") }, "\(problems)")
        let arena = try RestoreArena()
        defer { arena.remove() }
        let error = #expect(throws: LifeboatError.self) {
            try extractArtifact(record, source: MemoryReader(bytes, key: record.path), to: arena.restore)
        }
        #expect(error?.message.contains("'holes'") == true)
        try arena.expectUntouched()
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

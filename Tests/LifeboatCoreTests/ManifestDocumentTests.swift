import Foundation
import LifeboatCore
import Testing

@Suite(.timeLimit(.minutes(10)))
struct ManifestDocumentTests {
    static func manifest(format: Int = Manifest.currentFormat) -> Manifest {
        Manifest(format: format, policy: "etc", id: "20261130T020000Z-abcde",
                 source: SourceRecord(kind: "files", details: .object(["paths": .array([.string("/etc")])])),
                 startedAt: Date(timeIntervalSince1970: 1_764_468_000), finishedAt: Date(timeIntervalSince1970: 1_764_468_060),
                 tool: ToolRecord(version: "1.0"),
                 artifacts: [ArtifactRecord(path: "data/0001.tar.zst", role: "files", size: 4096, sha256: String(repeating: "cd", count: 32),
                                            compression: .zstd,
                                            entries: [EntryRecord(path: "etc/hosts", kind: .file, size: 12, sha256: String(repeating: "ab", count: 32))])])
    }

    @Test func aSealedManifestReadsBackAndIsStillPlainJSON() throws {
        let bytes = try ManifestDocument.encode(Self.manifest())
        #expect(ManifestDocument.seal(of: bytes) == .intact)
        #expect(try ManifestDocument.decode(bytes) == Self.manifest())
        // Any JSON reader takes it; the seal is its last member.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        let seal = try #require(object["documentSHA256"] as? String)
        #expect(seal.count == 64)
        #expect(String(decoding: bytes, as: UTF8.self).hasSuffix("\"documentSHA256\" : \"\(seal)\"\n}\n"))
    }

    /// Every single-byte change, anywhere in the document, is refused — never read as another
    /// manifest — and so is every cut.
    @Test func noChangedByteOrCutDocumentIsBelieved() throws {
        let bytes = try ManifestDocument.encode(Self.manifest())
        for index in bytes.indices {
            for flip: UInt8 in [0x01, 0x20, 0x80] {
                var changed = bytes
                changed[index] ^= flip
                #expect(throws: ManifestDocument.Problem.self, "byte \(index) ^ \(flip)") { try ManifestDocument.decode(changed) }
            }
        }
        for length in 0..<bytes.count where !bytes[length...].allSatisfy({ $0 == 0x0A }) {
            #expect(throws: ManifestDocument.Problem.self, "cut at \(length)") { try ManifestDocument.decode(Array(bytes[..<length])) }
        }
    }

    @Test func aChangedByteIsNamedAsADamagedDocumentWithBothDigests() throws {
        var bytes = try ManifestDocument.encode(Self.manifest())
        let text = String(decoding: bytes, as: UTF8.self)
        let at = try #require(text.utf8.firstRange(of: "0001.tar.zst".utf8)).lowerBound
        bytes[text.utf8.distance(from: text.utf8.startIndex, to: at)] = UInt8(ascii: "9")  // data/9001.tar.zst: still valid JSON
        guard case .broken(let why) = ManifestDocument.seal(of: bytes) else {
            Issue.record("a changed byte passed the seal")
            return
        }
        #expect(why.hasPrefix("its bytes have SHA-256 "))
        #expect(why.hasSuffix("it changed after it was written"))
    }

    @Test func formatTwoManifestsHaveNoSealAndStillRead() throws {
        let old = Self.manifest(format: 2)
        let bytes = Array(try JSON.encode(old))
        #expect(ManifestDocument.seal(of: bytes) == .absent)
        #expect(try ManifestDocument.decode(bytes) == old)
    }

    @Test func aFormatThreeManifestWithoutItsSealIsDamaged() throws {
        let bytes = Array(try JSON.encode(Self.manifest()))
        #expect(throws: ManifestDocument.Problem.damaged(
            "it has format 3 but no documentSHA256 member, which every manifest of that format ends with")) {
            try ManifestDocument.decode(bytes)
        }
    }

    @Test func aNewerFormatIsReportedAsSuch() throws {
        let bytes = try ManifestDocument.encode(Self.manifest(format: Manifest.currentFormat + 1))
        #expect(throws: ManifestDocument.Problem.tooNew(format: Manifest.currentFormat + 1)) { try ManifestDocument.decode(bytes) }
    }
}

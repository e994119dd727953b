import Crypto
import Foundation

/// The bytes of `manifest.json`: the manifest's JSON, sealed by its own SHA-256.
///
/// From format 3 the document's last member is `"documentSHA256"`, the SHA-256 (hex) of every
/// byte before the comma that precedes it:
///
///     {
///       "artifacts" : [ … ],
///       …
///       "tool" : { … },
///       "documentSHA256" : "9f2c…"
///     }
///
/// It is still plain JSON (`jq .artifacts manifest.json` works, and a decoder that does not
/// know the member ignores it), and a reader checks it before believing a word of the rest:
/// a byte changed on the disk or in the bucket is reported as a damaged manifest, not as an
/// artifact that seems to be missing or a file that seems to differ. Manifests of format 2 and
/// older have no seal and are read as they are; a format-3 manifest without one is damaged
/// (its seal's name was hit, or someone cut it off).
public enum ManifestDocument {
    /// The member that seals the document.
    public static let sealMember = "documentSHA256"
    /// The first manifest format whose documents are sealed.
    public static let firstSealedFormat = 3

    /// Why a document cannot be believed.
    public enum Problem: Error, Equatable, Sendable {
        /// Its bytes do not match its seal, it lacks the seal its format requires, or it is
        /// not a manifest at all: the sentence says which.
        case damaged(String)
        /// A manifest format newer than this Lifeboat knows.
        case tooNew(format: Int)
    }

    /// The sealed JSON of `manifest`.
    public static func encode(_ manifest: Manifest) throws -> [UInt8] {
        let json = Array(try JSON.encode(manifest))
        guard let close = json.lastIndex(of: UInt8(ascii: "}")) else {
            throw Problem.damaged("the manifest did not encode as a JSON object")
        }
        var head = Array(json[..<close])
        while let last = head.last, isWhitespace(last) { head.removeLast() }
        let digest = SigV4.hex(SHA256.hash(data: head))
        return head + Array(",\n  \"\(sealMember)\" : \"\(digest)\"\n}\n".utf8)
    }

    /// What the seal of a document says.
    public enum Seal: Equatable, Sendable {
        /// The seal is there and matches the bytes before it.
        case intact
        /// No seal (a manifest of format 2 or older, or a cut one).
        case absent
        /// A seal that does not match, or is not well formed: the sentence says how.
        case broken(String)
    }

    public static func seal(of bytes: [UInt8]) -> Seal {
        let name = Array("\"\(sealMember)\"".utf8)
        guard let at = lastRange(of: name, in: bytes) else { return .absent }
        // Before the member: the document's head, then a comma.
        var comma = at.lowerBound
        repeat {
            guard comma > 0 else { return .broken("its \(sealMember) member is not where a seal belongs") }
            comma -= 1
        } while isWhitespace(bytes[comma])
        guard bytes[comma] == UInt8(ascii: ",") else { return .broken("its \(sealMember) member is not where a seal belongs") }
        // After the member: `: "<64 hex>" }` and nothing but white space.
        var index = at.upperBound
        func skipSpace() { while index < bytes.count, isWhitespace(bytes[index]) { index += 1 } }
        func expect(_ character: Character) -> Bool {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: character.unicodeScalars.first!) else { return false }
            index += 1
            return true
        }
        guard expect(":"), expect("\""), index + 64 <= bytes.count else {
            return .broken("its \(sealMember) member is not well formed")
        }
        let recorded = String(decoding: bytes[index..<(index + 64)], as: UTF8.self)
        index += 64
        guard recorded.utf8.allSatisfy({ isLowerHex($0) }), expect("\""), expect("}") else {
            return .broken("its \(sealMember) member is not well formed")
        }
        skipSpace()
        guard index == bytes.count else { return .broken("bytes follow its \(sealMember) member") }
        let actual = SigV4.hex(SHA256.hash(data: bytes[..<comma]))
        guard actual == recorded else {
            return .broken("its bytes have SHA-256 \(actual), and it records \(recorded): it changed after it was written")
        }
        return .intact
    }

    /// Checks the seal, then decodes. `describe` words a decoding error.
    public static func decode(_ bytes: [UInt8], describe: (any Error) -> String = { "\($0)" }) throws(Problem) -> Manifest {
        let seal = seal(of: bytes)
        if case .broken(let why) = seal { throw .damaged(why) }
        let manifest: Manifest
        do {
            manifest = try JSON.decode(Manifest.self, from: Data(bytes))
        } catch {
            throw .damaged(describe(error))
        }
        if manifest.format > Manifest.currentFormat { throw .tooNew(format: manifest.format) }
        if manifest.format >= firstSealedFormat, seal == .absent {
            throw .damaged("it has format \(manifest.format) but no \(sealMember) member, which every manifest of that format ends with")
        }
        return manifest
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }

    private static func lastRange(of needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
        guard needle.count <= haystack.count else { return nil }
        var start = haystack.count - needle.count
        while start >= 0 {
            if haystack[start] == needle[0], haystack[start..<(start + needle.count)].elementsEqual(needle) {
                return start..<(start + needle.count)
            }
            start -= 1
        }
        return nil
    }
}

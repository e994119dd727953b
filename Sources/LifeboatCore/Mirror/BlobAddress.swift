import Foundation

/// Where an object's content is stored: `sha256:<hex>`, the SHA-256 of the bytes, or in an
/// encrypted repository `hmac-sha256:<hex>`, the HMAC-SHA-256 of the bytes under the
/// repository's key (so the repository does not reveal which known files it holds).
///
/// The scheme is part of every address a snapshot records: a reader meets an address whose
/// scheme it does not know and says so, instead of looking for it in the wrong place.
public struct BlobAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// `sha256`: the plain SHA-256 of the content, stored as the raw bytes.
    public static let sha256Scheme = "sha256"
    /// `hmac-sha256`: HMAC-SHA-256 of the content under the repository key set's HMAC key.
    public static let hmacSHA256Scheme = "hmac-sha256"
    /// The schemes this version reads (both 32-byte digests, stored alike).
    public static let knownSchemes: Set<String> = [sha256Scheme, hmacSHA256Scheme]

    public let scheme: String
    /// Lowercase hex digest (64 characters for `sha256`).
    public let hex: String

    /// The address of content whose SHA-256 is `digest` (32 bytes).
    public init(sha256 digest: some Sequence<UInt8>) {
        scheme = Self.sha256Scheme
        hex = digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The address of content whose HMAC-SHA-256 under the repository's key is `digest`.
    public init(hmacSHA256 digest: some Sequence<UInt8>) {
        scheme = Self.hmacSHA256Scheme
        hex = digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The address of content whose SHA-256 is the lowercase hex `hex` (checked).
    public init?(sha256Hex hex: String) {
        self.init(scheme: Self.sha256Scheme, hex: hex)
    }

    /// An address of a known scheme from its lowercase hex digest (checked).
    public init?(scheme: String, hex: String) {
        guard Self.knownSchemes.contains(scheme), Self.isHexDigest(hex) else { return nil }
        self.scheme = scheme
        self.hex = hex
    }

    /// Parses `scheme:hex`. Unknown schemes parse (a newer Lifeboat may write them); a known
    /// scheme's digest must be well formed.
    public init?(parsing text: String) {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let scheme = String(text[..<colon]), hex = String(text[text.index(after: colon)...])
        guard !scheme.isEmpty, scheme.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }),
              !hex.isEmpty, hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { return nil }
        if Self.knownSchemes.contains(scheme), !Self.isHexDigest(hex) { return nil }
        self.scheme = scheme
        self.hex = hex
    }

    public var description: String { "\(scheme):\(hex)" }

    public static func < (a: BlobAddress, b: BlobAddress) -> Bool {
        (a.scheme, a.hex) < (b.scheme, b.hex)  // ASCII only: String order is byte order here
    }

    static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The first 32 bits of the digest, for splitting the address space (`BlobSubset`).
    var leadingBits: UInt32 { UInt32(hex.prefix(8), radix: 16) ?? 0 }
}

/// The repository keys of an S3 mirror policy, besides its backups' own:
///
/// ```
/// <policy>/blobs/<aa>/<hex>                 the content of every object, by its address's digest (aa: its first two hex digits)
/// <policy>/backups/<id>/staging/<n>         large objects while they are copied (under the run's reservation)
/// ```
public enum MirrorLayout {
    public static func blobPrefix(policy: String) -> String { "\(policy)/blobs/" }

    /// Where the content of `address` is stored. Throws for a scheme this version cannot read.
    public static func blobKey(policy: String, address: BlobAddress) throws -> String {
        guard BlobAddress.knownSchemes.contains(address.scheme) else {
            throw LifeboatError(.usage, "blob address '\(address)' has scheme '\(address.scheme)', which this version of Lifeboat cannot read",
                                hint: "Use a Lifeboat version that knows '\(address.scheme)' blobs.")
        }
        return blobPrefix(policy: policy) + address.hex.prefix(2) + "/" + address.hex
    }

    /// The address stored under `key` (relative to the repository), when it is a blob's key;
    /// `scheme` is the repository's (`ContentAddressing.scheme`).
    public static func address(ofBlobKey key: String, policy: String, scheme: String = BlobAddress.sha256Scheme) -> BlobAddress? {
        let prefix = blobPrefix(policy: policy)
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, let address = BlobAddress(scheme: scheme, hex: String(parts[1])),
              address.hex.hasPrefix(parts[0])
        else { return nil }
        return address
    }

    /// The staging key of large object number `index` of a run (under its backup directory, so
    /// that the run's cleanup, and prune of an interrupted run, remove it with the rest).
    public static func stagingKey(policy: String, id: String, index: Int) -> String {
        "\(policy)/backups/\(id)/staging/\(index)"
    }

    /// The entry of a bucket's listing artifact.
    public static let listingEntry = "listing.jsonl"
}

/// `--read-data-subset n/t`: part `n` (1…t) of the address space split into `t` equal,
/// contiguous ranges of the digest's first 32 bits. Deterministic, so `1/7` … `7/7` on seven
/// days read every blob once a week.
public struct BlobSubset: Sendable, Equatable, CustomStringConvertible {
    public let part: Int
    public let parts: Int

    public init?(part: Int, of parts: Int) {
        guard parts >= 1, parts <= 1 << 16, (1...parts).contains(part) else { return nil }
        self.part = part
        self.parts = parts
    }

    /// Parses `n/t`.
    public init?(parsing text: String) {
        let fields = text.split(separator: "/", omittingEmptySubsequences: false)
        guard fields.count == 2, let n = Int(fields[0]), let t = Int(fields[1]) else { return nil }
        self.init(part: n, of: t)
    }

    public var description: String { "\(part)/\(parts)" }

    public func contains(_ address: BlobAddress) -> Bool {
        // Range r holds the values v with floor(v * t / 2^32) == r.
        let range = (UInt64(address.leadingBits) * UInt64(parts)) >> 32
        return Int(range) == part - 1
    }
}

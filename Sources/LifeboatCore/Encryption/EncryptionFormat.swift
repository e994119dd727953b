import Crypto
import Foundation

/// The byte layout of an encrypted object (format 1), as `docs/ENCRYPTION.md` specifies it:
///
/// ```
/// header (96 bytes)
///   0  7  magic "LBCRYPT"
///   7  1  version 1
///   8  8  key set id (the repository key set whose KEK wraps the data key)
///  16  4  chunk size C (plaintext bytes per chunk), big endian
///  20 16  name digest: the first 16 bytes of SHA-256(UTF-8 of the object's key)
///  36 12  wrap nonce (random)
///  48 32  data key, encrypted: AES-256-GCM(KEK, wrap nonce, AAD = header[0..<48])
///  80 16  its tag
/// chunks
///   n = P / C + 1 chunks for P plaintext bytes: n - 1 full chunks of C bytes, then the final
///   chunk of P mod C bytes (possibly empty). Each is ciphertext || 16-byte tag, sealed with
///   AES-256-GCM(data key, nonce = 0x00000000 || index as UInt64 big endian,
///               AAD = SHA-256(header) || index as UInt64 big endian || final flag (0 or 1)).
/// ```
///
/// The data key is random per object, so deterministic chunk nonces never repeat under a key.
/// The header is authenticated by the data key's wrap (its first 48 bytes are the wrap's AAD,
/// the rest is the wrap itself) and every chunk binds the header's digest, its index and
/// whether it is the last: a chunk cannot be changed, moved, dropped or taken from another
/// object, and the object cannot be cut at a chunk boundary, without a read failing.
public enum EncryptionFormat {
    public static let magic: [UInt8] = Array("LBCRYPT".utf8)
    public static let version: UInt8 = 1
    public static let headerSize = 96
    public static let tagSize = 16
    public static let nonceSize = 12
    /// 64 KiB: the framing costs 16 bytes per chunk (0.02 %), a reader or writer holds one
    /// chunk (many run at once in a mirror), and GCM's per-call cost is negligible at this size.
    public static let defaultChunkSize = 64 << 10
    public static let maximumChunkSize = 16 << 20

    /// Ciphertext bytes of an object of `plaintext` bytes.
    public static func ciphertextSize(plaintext: Int64, chunkSize: Int = defaultChunkSize) -> Int64 {
        let c = Int64(chunkSize)
        return Int64(headerSize) + plaintext + Int64(tagSize) * (plaintext / c + 1)
    }

    /// Plaintext bytes of an object of `ciphertext` bytes; nil when no plaintext size maps to
    /// it (the object is truncated or not encrypted).
    public static func plaintextSize(ciphertext: Int64, chunkSize: Int = defaultChunkSize) -> Int64? {
        let rest = ciphertext - Int64(headerSize)
        let stride = Int64(chunkSize + tagSize)
        guard rest >= Int64(tagSize) else { return nil }
        let full = rest / stride, last = rest % stride
        guard last >= Int64(tagSize) else { return nil }
        return full * Int64(chunkSize) + last - Int64(tagSize)
    }

    /// The first 16 bytes of SHA-256 of the key's UTF-8.
    public static func nameDigest(_ key: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(key.utf8)).prefix(16))
    }

    static func chunkNonce(_ index: UInt64) throws -> AES.GCM.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: index.bigEndian) { bytes.replaceSubrange(4..<12, with: $0) }
        return try AES.GCM.Nonce(data: bytes)
    }

    static func chunkAAD(headerDigest: [UInt8], index: UInt64, final: Bool) -> [UInt8] {
        var aad = headerDigest
        withUnsafeBytes(of: index.bigEndian) { aad.append(contentsOf: $0) }
        aad.append(final ? 1 : 0)
        return aad
    }
}

/// The 96-byte header of an encrypted object.
public struct EncryptedObjectHeader: Sendable, Equatable {
    public var keySetID: [UInt8]
    public var chunkSize: Int
    public var nameDigest: [UInt8]
    public var wrapNonce: [UInt8]
    public var wrappedKey: [UInt8]
    public var wrapTag: [UInt8]

    /// Seals a new header for `dataKey`, bound to the object `key`.
    public static func seal(dataKey: SymmetricKey, for key: String, keys: RepositoryKeySet, chunkSize: Int,
                            random: RandomSource) throws -> EncryptedObjectHeader {
        var header = EncryptedObjectHeader(keySetID: keys.id, chunkSize: chunkSize, nameDigest: EncryptionFormat.nameDigest(key),
                                           wrapNonce: random.bytes(12), wrappedKey: [], wrapTag: [])
        let box = try AES.GCM.seal(dataKey.withUnsafeBytes { Array($0) }, using: keys.kek,
                                   nonce: try AES.GCM.Nonce(data: header.wrapNonce), authenticating: header.authenticatedPrefix)
        header.wrappedKey = Array(box.ciphertext)
        header.wrapTag = Array(box.tag)
        return header
    }

    /// The first 48 bytes: what the wrap authenticates.
    var authenticatedPrefix: [UInt8] {
        var bytes = EncryptionFormat.magic
        bytes.append(EncryptionFormat.version)
        bytes += keySetID
        withUnsafeBytes(of: UInt32(chunkSize).bigEndian) { bytes.append(contentsOf: $0) }
        bytes += nameDigest
        bytes += wrapNonce
        return bytes
    }

    public var bytes: [UInt8] { authenticatedPrefix + wrappedKey + wrapTag }

    /// Parses a header; nil when the bytes are not one (the object is not encrypted, or its
    /// header is damaged beyond recognition). Nothing is authenticated yet.
    public init?(parsing bytes: some Collection<UInt8>) {
        let b = Array(bytes)
        guard b.count == EncryptionFormat.headerSize, Array(b[0..<7]) == EncryptionFormat.magic, b[7] == EncryptionFormat.version
        else { return nil }
        let size = b[16..<20].reduce(0) { $0 << 8 | Int($1) }
        guard size > 0, size <= EncryptionFormat.maximumChunkSize else { return nil }
        self.init(keySetID: Array(b[8..<16]), chunkSize: size, nameDigest: Array(b[20..<36]),
                  wrapNonce: Array(b[36..<48]), wrappedKey: Array(b[48..<80]), wrapTag: Array(b[80..<96]))
    }

    init(keySetID: [UInt8], chunkSize: Int, nameDigest: [UInt8], wrapNonce: [UInt8], wrappedKey: [UInt8], wrapTag: [UInt8]) {
        self.keySetID = keySetID
        self.chunkSize = chunkSize
        self.nameDigest = nameDigest
        self.wrapNonce = wrapNonce
        self.wrappedKey = wrappedKey
        self.wrapTag = wrapTag
    }

    /// The data key, once the header authenticates under the key set and names `key`.
    public func openDataKey(for key: String, keys: RepositoryKeySet, location: String) throws -> SymmetricKey {
        guard keySetID == keys.id else {
            throw EncryptionError.foreignKeySet(key: key, location: location, found: SigV4.hex(keySetID), expected: keys.idHex)
        }
        let plain: Data
        do {
            let box = try AES.GCM.SealedBox(nonce: try AES.GCM.Nonce(data: wrapNonce), ciphertext: wrappedKey, tag: wrapTag)
            plain = try AES.GCM.open(box, using: keys.kek, authenticating: authenticatedPrefix)
        } catch {
            throw EncryptionError.damagedHeader(key: key, location: location)
        }
        guard nameDigest == EncryptionFormat.nameDigest(key) else {
            throw EncryptionError.moved(key: key, location: location)
        }
        return SymmetricKey(data: plain)
    }
}

/// Random bytes: the system's generator, or a fixed sequence for test vectors.
public struct RandomSource: Sendable {
    public let bytes: @Sendable (Int) -> [UInt8]

    public init(_ bytes: @escaping @Sendable (Int) -> [UInt8]) {
        self.bytes = bytes
    }

    /// The operating system's cryptographically secure generator (getrandom on Linux), eight
    /// bytes a call (not one: every object draws 44).
    public static let system = RandomSource { count in
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 7)
        while bytes.count < count {
            withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) }
        }
        bytes.removeLast(bytes.count - count)
        return bytes
    }
}

/// The failures of encrypted objects and keys, each with its own message.
public enum EncryptionError {
    public static let hintTampered = "Restore another backup; check who can write to the repository, and run 'lifeboat verify --read-data' to find other damaged objects."

    static func damagedChunk(key: String, location: String, index: UInt64, last: Bool) -> LifeboatError {
        if last {
            return LifeboatError(.integrity, "object '\(key)' in \(location): chunk \(index), its last, failed authentication: the object was truncated inside that chunk, modified or damaged",
                                 hint: hintTampered)
        }
        return LifeboatError(.integrity, "object '\(key)' in \(location): chunk \(index) failed authentication: the object was modified or damaged",
                             hint: hintTampered)
    }

    static func reordered(key: String, location: String, index: UInt64, actual: UInt64) -> LifeboatError {
        LifeboatError(.integrity, "object '\(key)' in \(location): chunk \(index) holds chunk \(actual) of the object: its chunks were reordered",
                      hint: hintTampered)
    }

    static func truncated(key: String, location: String, _ detail: String) -> LifeboatError {
        LifeboatError(.integrity, "object '\(key)' in \(location) is truncated: \(detail)", hint: hintTampered)
    }

    static func notEncrypted(key: String, location: String) -> LifeboatError {
        LifeboatError(.integrity, "object '\(key)' in \(location) is not an encrypted object (no Lifeboat encryption header): it was replaced or damaged",
                      hint: hintTampered)
    }

    static func damagedHeader(key: String, location: String) -> LifeboatError {
        LifeboatError(.integrity, "object '\(key)' in \(location): its encryption header failed authentication: the object was modified or damaged",
                      hint: hintTampered)
    }

    static func moved(key: String, location: String) -> LifeboatError {
        LifeboatError(.integrity, "object '\(key)' in \(location) was encrypted for another name: it was moved or copied there from another object",
                      hint: hintTampered)
    }

    static func foreignKeySet(key: String, location: String, found: String, expected: String) -> LifeboatError {
        LifeboatError(.integrity, "object '\(key)' in \(location) is encrypted under key set \(found), not this repository's \(expected): it was copied from another repository",
                      hint: hintTampered)
    }
}

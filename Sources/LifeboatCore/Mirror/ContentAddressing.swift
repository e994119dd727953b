import Crypto

/// How a repository addresses content (mirror blobs): by plain SHA-256, or, when the
/// repository is encrypted, by HMAC-SHA-256 under the key set's HMAC key, so that someone
/// holding the repository cannot tell whether it holds a file they know. The repository
/// supplies it (`Repository.contentAddressing`); backup, verify and restore hash alike.
public struct ContentAddressing: Sendable {
    let key: SymmetricKey?

    public static let sha256 = ContentAddressing(key: nil)

    public static func keyed(_ key: SymmetricKey) -> ContentAddressing {
        ContentAddressing(key: key)
    }

    public var scheme: String { key == nil ? BlobAddress.sha256Scheme : BlobAddress.hmacSHA256Scheme }

    public func hasher() -> BlobHasher { BlobHasher(key: key) }
}

/// The address of bytes handed over piece by piece.
public struct BlobHasher {
    private enum State {
        case plain(SHA256)
        case keyed(HMAC<SHA256>)
    }

    private var state: State

    init(key: SymmetricKey?) {
        state = key.map { .keyed(HMAC<SHA256>(key: $0)) } ?? .plain(SHA256())
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        switch state {
        case .plain(var hasher):
            hasher.update(bufferPointer: bytes)
            state = .plain(hasher)
        case .keyed(var mac):
            mac.update(data: bytes)
            state = .keyed(mac)
        }
    }

    public func finalize() -> BlobAddress {
        switch state {
        case .plain(let hasher):
            return BlobAddress(sha256: hasher.finalize())
        case .keyed(let mac):
            return BlobAddress(hmacSHA256: mac.finalize().map { $0 })
        }
    }
}

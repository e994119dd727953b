import Crypto

/// SHA-256 of bytes handed over piece by piece, as `sha256sum` computes it: for callers that
/// hash what they read themselves (a WAL file before it is pushed, a marker's file).
public struct ContentHasher {
    private var hasher = SHA256()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    /// The digest in lowercase hexadecimal.
    public func finalize() -> String {
        hasher.finalize().hex
    }
}

import Crypto
import Foundation
import Synchronization

/// A store that encrypts every object of another (`EncryptionFormat`): the one place where a
/// repository's encryption happens, so everything above the store (backups, WAL, mirrors,
/// prune, verify, restore, list) works unchanged.
///
/// Left in plaintext: `lifeboat.json` (the format marker), `keys/<id>.json` (the wrapped key
/// sets, needed to open the rest) and `locks/<id>.json` (no data; readable so stale locks can
/// be broken); see `isPlaintext`.
///
/// Sizes in `stat` and listings are plaintext sizes, computed from the ciphertext's (no extra
/// request). Objects are bound to their keys, so `copy` re-encrypts through this process and
/// `features` never has `.serverSideCopy`.
public struct EncryptedStore: ObjectStore {
    public let inner: any ObjectStore
    public let chunkSize: Int
    let keys: KeySetSource
    let random: RandomSource
    /// Plaintext bytes a writer gathers before it seals and writes them (rounded to whole
    /// chunks); an object larger than this is sealed on a thread of its own.
    var batchSize = EncryptedObjectWriter.defaultBatchSize

    /// A store whose key set is known (tests, and the format's test vector).
    public init(inner: any ObjectStore, keys: RepositoryKeySet, chunkSize: Int = EncryptionFormat.defaultChunkSize,
                random: RandomSource = .system) {
        self.inner = inner
        self.chunkSize = chunkSize
        self.random = random
        self.keys = KeySetSource(keyring: RepositoryKeyring(store: inner, repository: inner.location), master: nil,
                                 loaded: keys, now: { Date() }, random: random)
    }

    /// A repository's store opened with its master key. A wrong key fails here; a repository
    /// without a key set gets one with its first encrypted write.
    public init(inner: any ObjectStore, repository: String, master: MasterKey, now: @escaping @Sendable () -> Date,
                chunkSize: Int = EncryptionFormat.defaultChunkSize, random: RandomSource = .system) throws {
        self.inner = inner
        self.chunkSize = chunkSize
        self.random = random
        let keyring = RepositoryKeyring(store: inner, repository: repository)
        keys = KeySetSource(keyring: keyring, master: master, loaded: try keyring.load(master), now: now, random: random)
    }

    public var location: String { inner.location }
    public var features: StoreFeatures { inner.features.subtracting(.serverSideCopy) }

    /// The repository's key set, created when `create` and there is none yet.
    public func keySet(create: Bool) throws -> RepositoryKeySet {
        try keys.get(create: create, location: location)
    }

    /// Whether the key set is known (loaded when the store was opened, or created since).
    public var hasKeySet: Bool { keys.loaded.withLock { $0 != nil } }

    /// Objects stored as they are: the format marker, key files (`keys/<id>.json`) and locks
    /// (`locks/<id>.json`); nothing deeper, so that the backups of a policy named `keys` or
    /// `locks` are encrypted like any other's.
    public static func isPlaintext(_ key: String) -> Bool {
        if key == "lifeboat.json" || KeyFileRecord.id(ofKey: key) != nil { return true }
        return key.hasPrefix("locks/") && !key.utf8.dropFirst("locks/".utf8.count).contains(UInt8(ascii: "/"))
    }

    func plaintextInfo(_ info: ObjectInfo) -> ObjectInfo {
        guard !Self.isPlaintext(info.key) else { return info }
        var result = info
        result.size = EncryptionFormat.plaintextSize(ciphertext: info.size, chunkSize: chunkSize) ?? 0
        return result
    }

    public func listPage(_ request: ListRequest) throws -> ListPage {
        var page = try inner.listPage(request)
        page.objects = page.objects.map(plaintextInfo)
        return page
    }

    public func stat(key: String) throws -> ObjectInfo? {
        try inner.stat(key: key).map(plaintextInfo)
    }

    public func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter {
        guard !Self.isPlaintext(key) else { return try inner.openWriter(key: key, ifAbsent: ifAbsent) }
        let sealer = try ChunkSealer(key: key, keys: try keySet(create: true), chunkSize: chunkSize, random: random)
        let output = try inner.openWriter(key: key, ifAbsent: ifAbsent)
        do {
            try sealer.header.withUnsafeBytes { try output.write($0) }
        } catch {
            output.abort()
            throw error
        }
        return EncryptedObjectWriter(output: output, sealer: sealer, batchSize: batchSize)
    }

    public func openReader(key: String) throws -> any ObjectReader {
        let input = try inner.openReader(key: key)
        guard !Self.isPlaintext(key) else { return input }
        do {
            return try EncryptedObjectReader(input: input, location: location) { header in
                try header.openDataKey(for: key, keys: try keySet(create: false), location: location)
            }
        } catch {
            input.close()
            throw error
        }
    }

    public func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws {
        guard !Self.isPlaintext(key) else { return try inner.put(key: key, bytes: bytes, ifAbsent: ifAbsent) }
        var sealer = try ChunkSealer(key: key, keys: try keySet(create: true), chunkSize: chunkSize, random: random)
        var output = sealer.header
        output.reserveCapacity(Int(EncryptionFormat.ciphertextSize(plaintext: Int64(bytes.count), chunkSize: chunkSize)))
        var start = 0
        while bytes.count - start >= chunkSize {
            output += try sealer.seal(bytes[start..<(start + chunkSize)], final: false)
            start += chunkSize
        }
        output += try sealer.seal(bytes[start...], final: true)
        try inner.put(key: key, bytes: output, ifAbsent: ifAbsent)
    }

    /// Re-encrypts through this process: the copy is bound to its new name.
    public func copy(from source: String, to destination: String) throws {
        guard !Self.isPlaintext(source), !Self.isPlaintext(destination) else {
            return try inner.copy(from: source, to: destination)
        }
        let reader = try openReader(key: source)
        defer { reader.close() }
        let writer = try openWriter(key: destination, ifAbsent: false)
        do {
            var buffer = [UInt8](repeating: 0, count: chunkSize)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                if n == 0 { break }
                try buffer.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// The inner store's: an incomplete write holds ciphertext under the same key.
    public func discardIncompleteWrites(prefix: String, olderThan cutoff: Date?, dryRun: Bool) throws -> [IncompleteWrite] {
        try inner.discardIncompleteWrites(prefix: prefix, olderThan: cutoff, dryRun: dryRun)
    }

    public func delete(keys: [String]) throws {
        try inner.delete(keys: keys)
    }
}

/// The key set of an `EncryptedStore`: loaded when the store is opened, or (for a repository
/// that has none yet) created by the first write.
final class KeySetSource: Sendable {
    let keyring: RepositoryKeyring
    let master: MasterKey?
    let now: @Sendable () -> Date
    let random: RandomSource
    let loaded: Mutex<RepositoryKeySet?>

    init(keyring: RepositoryKeyring, master: MasterKey?, loaded: RepositoryKeySet?, now: @escaping @Sendable () -> Date, random: RandomSource) {
        self.keyring = keyring
        self.master = master
        self.now = now
        self.random = random
        self.loaded = Mutex(loaded)
    }

    func get(create: Bool, location: String) throws -> RepositoryKeySet {
        if let keys = loaded.withLock({ $0 }) { return keys }
        guard let master else { throw LifeboatError(.internalError, "an encrypted store of \(location) has no key") }
        let keys: RepositoryKeySet
        if create {
            keys = try keyring.loadOrCreate(master, now: now(), random: random)
        } else {
            guard let found = try keyring.load(master) else {
                throw LifeboatError(.encryption, "repository '\(keyring.repository)' (\(location)) holds objects but no key file (keys/): they cannot be decrypted",
                                    hint: "Check that the repository's keys/ folder was not deleted; restore it from a copy of the repository.")
            }
            keys = found
        }
        loaded.withLock { $0 = keys }
        return keys
    }
}

/// Seals the chunks of one object under a fresh data key.
struct ChunkSealer {
    let header: [UInt8]
    let headerDigest: [UInt8]
    let dataKey: SymmetricKey
    let chunkSize: Int
    private(set) var index: UInt64 = 0

    init(key: String, keys: RepositoryKeySet, chunkSize: Int, random: RandomSource) throws {
        dataKey = SymmetricKey(data: random.bytes(32))
        header = try EncryptedObjectHeader.seal(dataKey: dataKey, for: key, keys: keys, chunkSize: chunkSize, random: random).bytes
        headerDigest = Array(SHA256.hash(data: header))
        self.chunkSize = chunkSize
    }

    /// The next chunk, `ciphertext || tag`: the sealed box's bytes after its nonce (no copy).
    mutating func seal(_ plaintext: some DataProtocol, final: Bool) throws -> Data {
        let box = try AES.GCM.seal(plaintext, using: dataKey, nonce: try EncryptionFormat.chunkNonce(index),
                                   authenticating: EncryptionFormat.chunkAAD(headerDigest: headerDigest, index: index, final: final))
        index += 1
        guard let combined = box.combined else {
            throw LifeboatError(.internalError, "an AES-GCM sealed box with a 12-byte nonce has no combined form")
        }
        return combined.dropFirst(EncryptionFormat.nonceSize)
    }
}

/// Reads the header, then one chunk at a time: a chunk's bytes are released only once its tag
/// verifies. A chunk is the last when nothing follows it, so the reader looks one byte ahead.
final class EncryptedObjectReader: ObjectReader {
    let input: any ObjectReader
    let location: String
    let chunkSize: Int
    let dataKey: SymmetricKey
    let headerDigest: [UInt8]
    private var raw: [UInt8]
    private var filled = 0
    private var plain = Data()  // the current chunk's verified bytes, as AES-GCM returned them
    private var offset = 0
    private var index: UInt64 = 0
    private var finished = false

    init(input: any ObjectReader, location: String, openKey: (EncryptedObjectHeader) throws -> SymmetricKey) throws {
        self.input = input
        self.location = location
        var headerBytes = [UInt8](repeating: 0, count: EncryptionFormat.headerSize)
        var got = 0
        while got < headerBytes.count {
            let n = try headerBytes.withUnsafeMutableBytes { try input.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[got...])) }
            if n == 0 { break }
            got += n
        }
        if got >= EncryptionFormat.magic.count, Array(headerBytes[0..<EncryptionFormat.magic.count]) != EncryptionFormat.magic {
            throw EncryptionError.notEncrypted(key: input.key, location: location)
        }
        guard got == headerBytes.count else {
            throw EncryptionError.truncated(key: input.key, location: location, "it ends inside its \(EncryptionFormat.headerSize)-byte header, after \(got) bytes")
        }
        guard let header = EncryptedObjectHeader(parsing: headerBytes) else {
            throw EncryptionError.damagedHeader(key: input.key, location: location)
        }
        dataKey = try openKey(header)
        chunkSize = header.chunkSize
        headerDigest = Array(SHA256.hash(data: headerBytes))
        raw = [UInt8](repeating: 0, count: header.chunkSize + EncryptionFormat.tagSize + 1)
    }

    var key: String { input.key }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while offset == plain.count {
            if finished { return 0 }
            try nextChunk()
        }
        let n = min(buffer.count, plain.count - offset)
        plain.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
        offset += n
        return n
    }

    private func nextChunk() throws {
        let stride = chunkSize + EncryptionFormat.tagSize
        while filled < raw.count {
            let n = try raw.withUnsafeMutableBytes { try input.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...])) }
            if n == 0 { break }
            filled += n
        }
        offset = 0
        if filled > stride {
            plain = try open(raw[0..<stride], final: false)
            raw[0] = raw[stride]
            filled = 1
        } else {
            guard filled >= EncryptionFormat.tagSize else {
                throw EncryptionError.truncated(key: key, location: location, "chunk \(index) is cut short (\(filled) bytes, less than its tag)")
            }
            plain = try open(raw[0..<filled], final: true)
            finished = true
        }
        index += 1
    }

    private func attempt(_ sealed: ArraySlice<UInt8>, index: UInt64, final: Bool) -> Data? {
        let tagStart = sealed.endIndex - EncryptionFormat.tagSize
        guard let nonce = try? EncryptionFormat.chunkNonce(index),
              let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: sealed[sealed.startIndex..<tagStart], tag: sealed[tagStart...]),
              let plain = try? AES.GCM.open(box, using: dataKey,
                                            authenticating: EncryptionFormat.chunkAAD(headerDigest: headerDigest, index: index, final: final))
        else { return nil }
        return plain
    }

    private func open(_ sealed: ArraySlice<UInt8>, final: Bool) throws -> Data {
        if let plain = attempt(sealed, index: index, final: final) { return plain }
        // Why it failed, on the failure path only: a full chunk where the last should be is a
        // cut at a chunk boundary; a chunk that opens at another index was moved.
        if final, sealed.count == chunkSize + EncryptionFormat.tagSize, attempt(sealed, index: index, final: false) != nil {
            throw EncryptionError.truncated(key: key, location: location, "it ends after chunk \(index), which is not its last: the chunks after it are missing")
        }
        let low = index >= 64 ? index - 64 : 0
        for other in low...(index + 64) where other != index {
            if attempt(sealed, index: other, final: false) != nil || attempt(sealed, index: other, final: true) != nil {
                throw EncryptionError.reordered(key: key, location: location, index: index, actual: other)
            }
        }
        throw EncryptionError.damagedChunk(key: key, location: location, index: index, last: final)
    }

    func close() {
        plain = Data()
        raw = []
        input.close()
    }
}

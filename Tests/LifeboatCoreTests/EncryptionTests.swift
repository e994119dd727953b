import Crypto
import Foundation
import Synchronization
import Testing
@testable import LifeboatCore

/// Random bytes counting up from `start` (0x40, 0x41, …): the test vector's randomness.
func countingRandom(from start: UInt8 = 0x40) -> RandomSource {
    let next = Mutex(start)
    return RandomSource { count in
        next.withLock { value in
            (0..<count).map { _ in
                defer { value &+= 1 }
                return value
            }
        }
    }
}

func encryptionFailure(_ body: () throws -> Void) -> LifeboatError? {
    do {
        try body()
        return nil
    } catch let error as LifeboatError {
        return error
    } catch {
        return LifeboatError(.internalError, "unexpected \(error)")
    }
}

let fixedKeySet = RepositoryKeySet(id: Array(0x01...0x08), kek: Array(0x00...0x1f), hmacKey: Array(0x20...0x3f))

@Suite struct EncryptionFormatTests {
    let chunk = 64
    let inner = MemoryStore(location: "memory:enc", clock: { Date(timeIntervalSince1970: 1_800_000_000) })
    var store: EncryptedStore { EncryptedStore(inner: inner, keys: fixedKeySet, chunkSize: chunk) }
    let key = "pg/backups/20261121T020000Z-k3f9q2/data/0.tar.zst"

    func bytes(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) } }

    func write(_ plain: [UInt8], key: String? = nil, pieces: Int = 5) throws {
        let writer = try store.openWriter(key: key ?? self.key)
        var start = 0, step = 1
        while start < plain.count {  // pieces of varying sizes, across chunk boundaries
            let end = min(plain.count, start + step)
            try plain[start..<end].withUnsafeBytes { try writer.write($0) }
            start = end
            step = step * 3 % 97 + pieces
        }
        try writer.commit()
    }

    func readBack(_ key: String? = nil) throws -> [UInt8] { try store.readAll(key: key ?? self.key) }

    func raw() throws -> [UInt8] { try inner.readAll(key: key) }
    func replace(_ bytes: [UInt8]) throws { try inner.put(key: key, bytes: bytes, ifAbsent: false) }

    @Test func roundTripsEverySizeAroundChunkBoundariesStreamedOrPut() throws {
        for size in [0, 1, chunk - 1, chunk, chunk + 1, 7 * chunk + 13, 5 * chunk] {
            let plain = bytes(size)
            try write(plain)
            #expect(try readBack() == plain, "streamed, \(size) bytes")
            #expect(try inner.stat(key: key)?.size == EncryptionFormat.ciphertextSize(plaintext: Int64(size), chunkSize: chunk))
            #expect(try store.stat(key: key)?.size == Int64(size))
            #expect(try store.listAll(prefix: "pg/").first?.size == Int64(size))
            try store.put(key: key, bytes: plain, ifAbsent: false)
            #expect(try readBack() == plain, "put, \(size) bytes")
            #expect(try raw().count == EncryptionFormat.ciphertextSize(plaintext: Int64(size), chunkSize: chunk))
        }
    }

    @Test func sizeMappingIsExactBothWays() {
        for c in [16, 64, EncryptionFormat.defaultChunkSize] {
            for p in Array(0...(3 * c + 2)) + [Int(c) * 1000 + 5] {
                let s = EncryptionFormat.ciphertextSize(plaintext: Int64(p), chunkSize: c)
                #expect(EncryptionFormat.plaintextSize(ciphertext: s, chunkSize: c) == Int64(p))
            }
            // No plaintext maps to a size with less than a tag after the last full chunk.
            #expect(EncryptionFormat.plaintextSize(ciphertext: Int64(EncryptionFormat.headerSize + 15), chunkSize: c) == nil)
            #expect(EncryptionFormat.plaintextSize(ciphertext: Int64(EncryptionFormat.headerSize + c + 16 + 3), chunkSize: c) == nil)
        }
        #expect(EncryptionFormat.ciphertextSize(plaintext: 0) == 112)
        #expect(EncryptionFormat.ciphertextSize(plaintext: 65536) == 96 + 65536 + 32)
    }

    @Test func theDataIsNotInTheCiphertextAndPlaintextObjectsStayPlain() throws {
        let plain = Array(repeating: UInt8(ascii: "A"), count: 300)
        try write(plain)
        let ciphertext = try raw()
        let run = Array(repeating: UInt8(ascii: "A"), count: 8)
        #expect(!(0...(ciphertext.count - 8)).contains { Array(ciphertext[$0..<($0 + 8)]) == run })
        for plainKey in ["lifeboat.json", "locks/abc.json", "keys/0011.json"] {
            try store.put(key: plainKey, bytes: Array("{}".utf8), ifAbsent: false)
            #expect(try inner.readAll(key: plainKey) == Array("{}".utf8))
        }
    }

    @Test func aFlippedBitInTheHeaderFailsTheHeader() throws {
        try write(bytes(3 * chunk))
        for offset in [9, 17, 25, 40, 60, 90] {  // key set id, chunk size, name digest, nonce, wrapped key, tag
            var damaged = try raw()
            damaged[offset] ^= 0x04
            try replace(damaged)
            let error = encryptionFailure { _ = try readBack() }
            #expect(error?.code == .integrity, "offset \(offset)")
            #expect(error?.message.contains("'\(key)'") == true)
            if offset == 9 {
                #expect(error?.message.contains("not this repository's 0102030405060708") == true)
            } else {
                #expect(error?.message.contains("its encryption header failed authentication") == true, "offset \(offset): \(error?.message ?? "none")")
            }
            try write(bytes(3 * chunk))
        }
    }

    @Test func aFlippedBitInAMiddleChunkOrItsTagNamesTheChunk() throws {
        try write(bytes(3 * chunk + 5))
        let stride = chunk + 16
        for (offset, index) in [(96 + stride + 10, 1), (96 + 2 * stride - 3, 1), (96 + 10, 0)] {
            var damaged = try raw()
            damaged[offset] ^= 0x80
            try replace(damaged)
            let error = encryptionFailure { _ = try readBack() }
            #expect(error?.code == .integrity)
            #expect(error?.message == "object '\(key)' in memory:enc: chunk \(index) failed authentication: the object was modified or damaged")
            try write(bytes(3 * chunk + 5))
        }
    }

    @Test func aFlippedBitInTheFinalChunkNamesTheLastChunk() throws {
        try write(bytes(2 * chunk + 5))
        var damaged = try raw()
        damaged[damaged.count - 20] ^= 1
        try replace(damaged)
        let error = encryptionFailure { _ = try readBack() }
        #expect(error?.message.contains("chunk 2, its last, failed authentication") == true)
    }

    @Test func swappedChunksAreReportedAsReordered() throws {
        try write(bytes(4 * chunk + 5))
        let stride = chunk + 16
        var damaged = try raw()
        let first = Array(damaged[(96 + stride)..<(96 + 2 * stride)])
        damaged.replaceSubrange((96 + stride)..<(96 + 2 * stride), with: damaged[(96 + 2 * stride)..<(96 + 3 * stride)])
        damaged.replaceSubrange((96 + 2 * stride)..<(96 + 3 * stride), with: first)
        try replace(damaged)
        let error = encryptionFailure { _ = try readBack() }
        #expect(error?.code == .integrity)
        #expect(error?.message == "object '\(key)' in memory:enc: chunk 1 holds chunk 2 of the object: its chunks were reordered")
    }

    @Test func droppingChunksAtABoundaryIsTruncation() throws {
        let stride = chunk + 16
        // 3 full chunks and an empty final one: drop the final.
        try write(bytes(3 * chunk))
        try replace(Array(try raw().dropLast(16)))
        #expect(encryptionFailure { _ = try readBack() }?.message
            == "object '\(key)' in memory:enc is truncated: it ends after chunk 2, which is not its last: the chunks after it are missing")
        // Drop the last two chunks of 5 full + 1 partial.
        try write(bytes(5 * chunk + 3))
        try replace(Array(try raw().dropLast(16 + 3 + stride)))
        #expect(encryptionFailure { _ = try readBack() }?.message.contains("is truncated: it ends after chunk 3") == true)
    }

    @Test func cuttingInsideAChunkIsTruncation() throws {
        try write(bytes(3 * chunk + 5))
        try replace(Array(try raw().prefix(96 + chunk + 16 + 30)))
        let error = encryptionFailure { _ = try readBack() }
        #expect(error?.code == .integrity)
        #expect(error?.message.contains("chunk 1, its last, failed authentication: the object was truncated inside that chunk") == true)
        try replace(Array(try raw().prefix(96 + 7)))
        #expect(encryptionFailure { _ = try readBack() }?.message.contains("is truncated: chunk 0 is cut short (7 bytes") == true)
        try replace(Array(try raw().prefix(50)))
        #expect(encryptionFailure { _ = try readBack() }?.message.contains("is truncated: it ends inside its 96-byte header") == true)
    }

    @Test func anObjectMovedToAnotherNameFails() throws {
        try write(bytes(100))
        try inner.copy(from: key, to: "pg/backups/other/manifest.json")
        let error = encryptionFailure { _ = try readBack("pg/backups/other/manifest.json") }
        #expect(error?.message == "object 'pg/backups/other/manifest.json' in memory:enc was encrypted for another name: it was moved or copied there from another object")
        // A copy through the store re-encrypts for the new name, never inside the store.
        #expect(!store.features.contains(.serverSideCopy))
        try store.copy(from: key, to: "pg/backups/other/copy")
        #expect(try readBack("pg/backups/other/copy") == bytes(100))
    }

    @Test func anObjectOfAnotherKeySetOrNotEncryptedIsNamed() throws {
        let other = EncryptedStore(inner: inner, keys: RepositoryKeySet(id: Array(repeating: 9, count: 8), kek: Array(repeating: 1, count: 32),
                                                                        hmacKey: Array(repeating: 2, count: 32)), chunkSize: chunk)
        try other.put(key: key, bytes: [1, 2, 3], ifAbsent: false)
        #expect(encryptionFailure { _ = try readBack() }?.message.contains("is encrypted under key set 0909090909090909, not this repository's 0102030405060708") == true)
        try inner.put(key: key, bytes: Array("{\"plain\": true}".utf8), ifAbsent: false)
        #expect(encryptionFailure { _ = try readBack() }?.message.contains("is not an encrypted object") == true)
    }

    /// `keys/` and `locks/` hold plaintext only at their top: a deeper object is encrypted.
    @Test func theBackupsOfAPolicyNamedKeysOrLocksAreEncryptedAndAreNoKeyFiles() throws {
        for key in ["keys/backups/1/manifest.json", "locks/backups/1/manifest.json"] {
            try store.put(key: key, bytes: [1, 2, 3], ifAbsent: true)
            #expect(Array(try inner.readAll(key: key).prefix(7)) == EncryptionFormat.magic, "\(key)")
            #expect(try store.readAll(key: key) == [1, 2, 3])
        }
        #expect(EncryptedStore.isPlaintext("keys/0123456789abcdef.json"))
        #expect(EncryptedStore.isPlaintext("locks/20261121T020000Z-k3f9q2.json"))
        // An unencrypted repository with a policy named `keys` is not taken for an encrypted one.
        let plain = MemoryStore(location: "memory:plain", clock: { Date(timeIntervalSince1970: 1_800_000_000) })
        try plain.put(key: "keys/backups/1/manifest.json", bytes: Array("{}".utf8), ifAbsent: true)
        let keyring = RepositoryKeyring(store: plain, repository: "plain")
        #expect(try keyring.isEncrypted() == false)
        #expect(try keyring.records().isEmpty)
    }

    /// The vector docs/ENCRYPTION.md quotes: key set KEK 00…1f, randomness counting up from 0x40
    /// (data key 40…5f, then wrap nonce 60…6b), chunk size 8.
    @Test func testVector() throws {
        let vectorStore = EncryptedStore(inner: inner, keys: fixedKeySet, chunkSize: 8, random: countingRandom())
        try vectorStore.put(key: "demo/backups/x/manifest.json", bytes: Array("Lifeboat test vector, 31 bytes.".utf8), ifAbsent: true)
        let ciphertext = try inner.readAll(key: "demo/backups/x/manifest.json")
        #expect(SigV4.hex(ciphertext) == EncryptionVector.ciphertext)
        #expect(try vectorStore.readAll(key: "demo/backups/x/manifest.json") == Array("Lifeboat test vector, 31 bytes.".utf8))
    }
}

enum EncryptionVector {
    static let ciphertext =
        "4c424352595054010102030405060708000000081858695787d82f825cbf99cb76474f43606162636465666768696a6b" +
        "aa9ad916ff05c528345fb3603ec08f0c7624dbdad031648efbf8da3720afa9576ef19277df371a7b6485892d75c11152" +
        "165d561df607b3df3d4e1b80d8259d6c4785070a5a7c1f4c93da1642e68692247a39b8e100aa2466f4ee55eccfa05110" +
        "5fa92c78fcfcfc91b3441c5e9042259a54b0229d01130fb819545fd7a63418f504537f9aa0292eed83ce78c23b2d60"
}

/// The writer seals objects larger than a batch on a thread of its own: what it stores must be
/// exactly what sealing on the caller's thread stores, and a failed store write must reach
/// the caller and leave nothing.
@Suite struct EncryptedWriterBatches {
    let chunk = 16
    func bytes(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 5) } }

    func stored(_ plain: [UInt8], batchSize: Int, inner: any ObjectStore) throws -> [UInt8] {
        var store = EncryptedStore(inner: inner, keys: fixedKeySet, chunkSize: chunk, random: countingRandom())
        store.batchSize = batchSize
        let writer = try store.openWriter(key: "p/backups/1/data/0.tar.zst")
        var start = 0, step = 3
        while start < plain.count {  // pieces that cross chunk and batch boundaries
            let end = min(plain.count, start + step)
            try plain[start..<end].withUnsafeBytes { try writer.write($0) }
            start = end
            step = step * 5 % 211 + 1
        }
        try writer.commit()
        #expect(try store.readAll(key: "p/backups/1/data/0.tar.zst") == plain)
        return try inner.readAll(key: "p/backups/1/data/0.tar.zst")
    }

    func memory() -> MemoryStore { MemoryStore(location: "memory:batches", clock: { Date(timeIntervalSince1970: 1_800_000_000) }) }

    @Test func anObjectSealedOnTheSealingThreadIsByteForByteTheOneSealedInline() throws {
        // Sizes around whole batches (64 bytes = 4 chunks): the final chunk may be empty.
        for size in [0, 15, 16, 63, 64, 65, 128, 129, 1000, 64 * 40] {
            let plain = bytes(size)
            let inline = try stored(plain, batchSize: 1 << 20, inner: memory())
            let threaded = try stored(plain, batchSize: 64, inner: memory())
            #expect(threaded == inline, "\(size) bytes")
            #expect(threaded.count == EncryptionFormat.ciphertextSize(plaintext: Int64(size), chunkSize: chunk))
        }
    }

    @Test func aStoreWriteThatFailsOnTheSealingThreadFailsTheWriterAndLeavesNothing() throws {
        let inner = memory()
        var store = EncryptedStore(inner: FailingWrites(base: inner, failOnWrite: 3), keys: fixedKeySet, chunkSize: chunk)
        store.batchSize = 64
        let writer = try store.openWriter(key: "p/backups/1/data/0.tar.zst")
        let plain = bytes(64 * 20)
        let error = encryptionFailure {
            try plain.withUnsafeBytes { all in
                for start in stride(from: 0, to: all.count, by: 50) {
                    try writer.write(UnsafeRawBufferPointer(rebasing: all[start..<min(all.count, start + 50)]))
                }
            }
            try writer.commit()
        }
        writer.abort()
        #expect(error?.message == "disk full on write 3")
        #expect(try inner.listAll(prefix: "").isEmpty)
    }
}

/// A store whose writers fail at their `failOnWrite`-th write (the header is the first).
final class FailingWrites: ObjectStore {
    let base: any ObjectStore
    let failOnWrite: Int
    init(base: any ObjectStore, failOnWrite: Int) {
        self.base = base
        self.failOnWrite = failOnWrite
    }
    var location: String { base.location }
    var features: StoreFeatures { base.features }
    func listPage(_ request: ListRequest) throws -> ListPage { try base.listPage(request) }
    func stat(key: String) throws -> ObjectInfo? { try base.stat(key: key) }
    func openReader(key: String) throws -> any ObjectReader { try base.openReader(key: key) }
    func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter {
        Writer(inner: try base.openWriter(key: key, ifAbsent: ifAbsent), failOnWrite: failOnWrite)
    }
    func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws { try base.put(key: key, bytes: bytes, ifAbsent: ifAbsent) }
    func delete(keys: [String]) throws { try base.delete(keys: keys) }
    func copy(from source: String, to destination: String) throws { try base.copy(from: source, to: destination) }

    final class Writer: ObjectWriter {
        let inner: any ObjectWriter
        let failOnWrite: Int
        var writes = 0
        init(inner: any ObjectWriter, failOnWrite: Int) {
            self.inner = inner
            self.failOnWrite = failOnWrite
        }
        var key: String { inner.key }
        func write(_ bytes: UnsafeRawBufferPointer) throws {
            writes += 1
            if writes == failOnWrite { throw LifeboatError(.io, "disk full on write \(writes)") }
            try inner.write(bytes)
        }
        func commit() throws { try inner.commit() }
        func abort() { inner.abort() }
    }
}

@Suite struct RepositoryKeyTests {
    let inner = MemoryStore(location: "memory:keys", clock: { Date(timeIntervalSince1970: 1_800_000_000) })
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let a = MasterKey(bytes: Array(repeating: 0xAA, count: 32), origin: "key file /keys/a")
    let b = MasterKey(bytes: Array(repeating: 0xBB, count: 32), origin: "key file /keys/b")

    func open(_ master: MasterKey) throws -> EncryptedStore {
        try EncryptedStore(inner: inner, repository: "vault", master: master, now: { now }, chunkSize: 32)
    }

    @Test func masterKeysParseFromHexOrBase64AndNothingElse() throws {
        let hex = String(repeating: "ab", count: 32)
        #expect(try MasterKey.parse(hex + "\n", origin: "x").id == MasterKey(bytes: Array(repeating: 0xAB, count: 32), origin: "y").id)
        let base64 = Data(repeating: 0xAB, count: 32).base64EncodedString()
        #expect(try MasterKey.parse("  " + base64, origin: "x").check == MasterKey(bytes: Array(repeating: 0xAB, count: 32), origin: "y").check)
        let error = encryptionFailure { _ = try MasterKey.parse("hunter2", origin: "key file /k") }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("key file /k does not hold an encryption key") == true)
        #expect(error?.message.contains("hunter2") == false)
    }

    @Test func theFirstWriteCreatesTheKeySetAndTheSameKeyReadsIt() throws {
        let store = try open(a)
        #expect(try inner.listAll(prefix: "keys/").isEmpty)
        try store.put(key: "p/backups/1/manifest.json", bytes: [1, 2, 3], ifAbsent: true)
        #expect(try inner.listAll(prefix: "keys/").map(\.key) == ["keys/\(a.id).json"])
        #expect(try open(a).readAll(key: "p/backups/1/manifest.json") == [1, 2, 3])
    }

    @Test func aWrongKeyIsAWrongKeyNotCorruption() throws {
        try open(a).put(key: "p/x", bytes: [1], ifAbsent: true)
        let error = encryptionFailure { _ = try open(b) }
        #expect(error?.code == .encryption)
        #expect(error?.exitStatus == 1)
        #expect(error?.message == "the key in key file /keys/b does not open repository 'vault' (memory:keys): wrong key")
    }

    @Test func aDamagedKeyFileIsReportedAsDamaged() throws {
        try open(a).put(key: "p/x", bytes: [1], ifAbsent: true)
        let keyFile = "keys/\(a.id).json"
        var record = try JSON.decode(KeyFileRecord.self, from: Data(try inner.readAll(key: keyFile)))
        record.wrapped = String(record.wrapped.dropLast(2)) + (record.wrapped.hasSuffix("00") ? "01" : "00")
        try inner.put(key: keyFile, bytes: Array(try JSON.encode(record)), ifAbsent: false)
        let error = encryptionFailure { _ = try open(a) }
        #expect(error?.code == .encryption)
        #expect(error?.message == "key file memory:keys/\(keyFile) is damaged: it does not decrypt with the key in key file /keys/a, whose key check it records")
        try inner.put(key: keyFile, bytes: Array("not json".utf8), ifAbsent: false)
        #expect(encryptionFailure { _ = try open(a) }?.message.contains("is not a valid key file") == true)
    }

    @Test func rotationReWrapsTheKeySetWithoutRewritingData() throws {
        try open(a).put(key: "p/x", bytes: Array(0..<100), ifAbsent: true)
        let before = try inner.stat(key: "p/x")
        let keyring = RepositoryKeyring(store: inner, repository: "vault")
        let added = try keyring.add(b, current: a, now: now, random: .system)
        #expect(added.id == b.id)
        #expect(encryptionFailure { _ = try keyring.add(b, current: a, now: now, random: .system) }?.code == .usage)
        try keyring.remove(id: a.id, current: b)
        #expect(try keyring.records().map(\.id) == [b.id])
        #expect(try open(b).readAll(key: "p/x") == Array(0..<100))
        #expect(try inner.stat(key: "p/x") == before)
        #expect(encryptionFailure { _ = try open(a) }?.message.contains("wrong key") == true)
        #expect(encryptionFailure { try keyring.remove(id: b.id, current: b) }?.message.contains("is the last key") == true)
    }
}

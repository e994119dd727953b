import Crypto
import Foundation

/// The user's master key: 32 random bytes from a key file or an environment variable, as 64
/// hexadecimal digits or base64. It never encrypts data itself: it wraps the repository key
/// set (`keys/<id>.json`), so a new master key re-wraps the set without rewriting data.
public struct MasterKey: Sendable {
    public let key: SymmetricKey
    /// Where it came from, for messages ("key file /etc/lifeboat/repo.key", "$LIFEBOAT_KEY");
    /// never its contents.
    public let origin: String

    public init(bytes: [UInt8], origin: String) {
        key = SymmetricKey(data: bytes)
        self.origin = origin
    }

    /// Parses a key's text (surrounding white space ignored): 64 hex digits or base64 of 32 bytes.
    public static func parse(_ text: String, origin: String) throws -> MasterKey {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.utf8.count == 64, let bytes = Self.hexBytes(trimmed) {
            return MasterKey(bytes: bytes, origin: origin)
        }
        if let data = Data(base64Encoded: trimmed), data.count == 32 {
            return MasterKey(bytes: Array(data), origin: origin)
        }
        throw LifeboatError(.configuration, "\(origin) does not hold an encryption key: a key is 32 bytes, written as 64 hexadecimal digits or in base64",
                            hint: "Create one with 'head -c 32 /dev/urandom | base64 > FILE && chmod 600 FILE'.")
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    private func mac(_ label: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(label.utf8), using: key))
    }

    /// The name of the key file this key opens: the first 8 bytes of
    /// HMAC-SHA-256(master, "lifeboat key id v1"), in hex. Derived, so two processes that
    /// create a repository's key set at once with the same key meet on one conditional write.
    public var id: String { SigV4.hex(mac("lifeboat key id v1").prefix(8)) }

    /// The key check a key file records: HMAC-SHA-256(master, "lifeboat key check v1"), in hex.
    public var check: String { SigV4.hex(mac("lifeboat key check v1")) }
}

/// What the master key wraps: the key-encryption key that wraps every object's data key, and
/// the key of keyed content addresses (mirror blobs). One per repository, whatever the number
/// of master keys.
public struct RepositoryKeySet: Sendable {
    public let id: [UInt8]
    public let kek: SymmetricKey
    public let hmacKey: SymmetricKey

    public init(id: [UInt8], kek: [UInt8], hmacKey: [UInt8]) {
        self.id = id
        self.kek = SymmetricKey(data: kek)
        self.hmacKey = SymmetricKey(data: hmacKey)
    }

    public static func generate(random: RandomSource) -> RepositoryKeySet {
        RepositoryKeySet(id: random.bytes(8), kek: random.bytes(32), hmacKey: random.bytes(32))
    }

    public var idHex: String { SigV4.hex(id) }

    var material: [UInt8] {
        kek.withUnsafeBytes { Array($0) } + hmacKey.withUnsafeBytes { Array($0) }
    }
}

/// `keys/<id>.json`: the repository key set wrapped by one master key.
public struct KeyFileRecord: Codable, Sendable, Equatable {
    public static let currentFormat = 1
    public static let prefix = "keys/"
    public static func key(id: String) -> String { "\(prefix)\(id).json" }

    /// The id of the key file stored under `key`: `keys/<id>.json`, nothing deeper. nil for
    /// anything else, such as the objects of a policy named `keys` (`keys/backups/…`), which
    /// are encrypted like any other.
    public static func id(ofKey key: String) -> String? {
        guard key.hasPrefix(prefix), key.hasSuffix(".json") else { return nil }
        let id = key.utf8.dropFirst(prefix.utf8.count).dropLast(".json".utf8.count)
        guard !id.isEmpty, !id.contains(UInt8(ascii: "/")) else { return nil }
        return String(id)
    }

    public var format: Int
    /// The master key's id (`MasterKey.id`), also the file's name.
    public var id: String
    /// The key set's id, which every object's header names.
    public var keySet: String
    public var created: Date
    /// `MasterKey.check`: tells a wrong key from a damaged file.
    public var check: String
    /// AES-256-GCM nonce (12 bytes, hex).
    public var nonce: String
    /// KEK || HMAC key (64 bytes) encrypted, then the 16-byte tag, in hex. AAD: UTF-8 of
    /// "<id>:<keySet>".
    public var wrapped: String

    public static func seal(_ keys: RepositoryKeySet, with master: MasterKey, created: Date, random: RandomSource) throws -> KeyFileRecord {
        let nonce = random.bytes(12)
        let aad = Array("\(master.id):\(keys.idHex)".utf8)
        let box = try AES.GCM.seal(keys.material, using: master.key, nonce: try AES.GCM.Nonce(data: nonce), authenticating: aad)
        return KeyFileRecord(format: currentFormat, id: master.id, keySet: keys.idHex, created: created, check: master.check,
                             nonce: SigV4.hex(nonce), wrapped: SigV4.hex(Array(box.ciphertext) + Array(box.tag)))
    }

    /// The key set, or an error saying whether the key is wrong or the file damaged.
    public func open(with master: MasterKey, repository: String, location: String) throws -> RepositoryKeySet {
        let file = "\(location.hasSuffix("/") ? location : location + "/")\(Self.key(id: id))"
        guard format <= Self.currentFormat else {
            throw LifeboatError(.usage, "key file \(file) has format \(format); this Lifeboat reads format \(Self.currentFormat)",
                                hint: "Upgrade Lifeboat to open this repository.")
        }
        guard check == master.check else {
            throw LifeboatError(.encryption, "the key in \(master.origin) does not open repository '\(repository)': wrong key",
                                hint: "Use the key the repository was created (or last given 'lifeboat key add') with; 'lifeboat key list' shows the ids of the keys that open it.")
        }
        let damaged = LifeboatError(.encryption, "key file \(file) is damaged: it does not decrypt with the key in \(master.origin), whose key check it records",
                                    hint: "Open the repository with another of its keys ('lifeboat key list'), then remove this one and add the key again.")
        guard let nonceBytes = MasterKey.hexBytes(nonce), nonceBytes.count == 12, let sealed = MasterKey.hexBytes(wrapped), sealed.count == 80,
              let setID = MasterKey.hexBytes(keySet), setID.count == 8
        else { throw damaged }
        do {
            let box = try AES.GCM.SealedBox(nonce: try AES.GCM.Nonce(data: nonceBytes), ciphertext: sealed[0..<64], tag: sealed[64..<80])
            let plain = Array(try AES.GCM.open(box, using: master.key, authenticating: Array("\(id):\(keySet)".utf8)))
            return RepositoryKeySet(id: setID, kek: Array(plain[0..<32]), hmacKey: Array(plain[32..<64]))
        } catch {
            throw damaged
        }
    }
}

/// The key files of a repository on its store (plaintext objects under `keys/`).
public struct RepositoryKeyring: Sendable {
    public let store: any ObjectStore
    public let repository: String

    public init(store: any ObjectStore, repository: String) {
        self.store = store
        self.repository = repository
    }

    /// Every key file's record, by id.
    public func records() throws -> [KeyFileRecord] {
        var records: [KeyFileRecord] = []
        try store.forEachObject(prefix: KeyFileRecord.prefix, delimiter: "/") { info in
            guard KeyFileRecord.id(ofKey: info.key) != nil else { return true }
            records.append(try record(key: info.key))
            return true
        }
        return records
    }

    func record(key: String) throws -> KeyFileRecord {
        let bytes = try store.readAll(key: key, limit: 1 << 20)
        do {
            return try JSON.decode(KeyFileRecord.self, from: Data(bytes))
        } catch {
            throw LifeboatError(.encryption, "key file \(store.location.hasSuffix("/") ? store.location : store.location + "/")\(key) is not a valid key file",
                                hint: "Open the repository with another of its keys ('lifeboat key list'), then remove this one.")
        }
    }

    /// Whether the repository has any key file (one listing; a policy named `keys` is no key).
    public func isEncrypted() throws -> Bool {
        var found = false
        try store.forEachObject(prefix: KeyFileRecord.prefix, delimiter: "/") { info in
            found = KeyFileRecord.id(ofKey: info.key) != nil
            return !found
        }
        return found
    }

    /// The key set `master` opens; nil when the repository has no key file at all (no key set
    /// yet). A key that opens none of the files is a wrong key.
    public func load(_ master: MasterKey) throws -> RepositoryKeySet? {
        let record: KeyFileRecord
        do {
            record = try self.record(key: KeyFileRecord.key(id: master.id))
        } catch let error as LifeboatError where error.code == .notFound {
            let ids = try records().map(\.id)
            guard !ids.isEmpty else { return nil }
            throw LifeboatError(.encryption, "the key in \(master.origin) does not open repository '\(repository)' (\(store.location)): wrong key",
                                hint: "Use one of the keys the repository has (ids \(ids.joined(separator: ", "))); a key's id is shown by 'lifeboat key list'.")
        }
        guard record.id == master.id else {
            throw LifeboatError(.encryption, "key file \(KeyFileRecord.key(id: master.id)) in \(store.location) records id \(record.id): it was renamed or damaged",
                                hint: "Open the repository with another of its keys ('lifeboat key list'), then remove this one.")
        }
        return try record.open(with: master, repository: repository, location: store.location)
    }

    /// The key set `master` opens, created (with a conditional write, so that concurrent first
    /// writers agree) when the repository has none.
    public func loadOrCreate(_ master: MasterKey, now: Date, random: RandomSource) throws -> RepositoryKeySet {
        if let keys = try load(master) { return keys }
        let keys = RepositoryKeySet.generate(random: random)
        let record = try KeyFileRecord.seal(keys, with: master, created: now, random: random)
        do {
            try store.put(key: KeyFileRecord.key(id: master.id), bytes: Array(try JSON.encode(record)), ifAbsent: true)
            return keys
        } catch let error as LifeboatError where error.code == .alreadyExists {
            guard let theirs = try load(master) else { throw error }
            return theirs
        }
    }

    /// Wraps the key set `current` opens with `new` too (key rotation: no data is rewritten).
    public func add(_ new: MasterKey, current: MasterKey, now: Date, random: RandomSource) throws -> KeyFileRecord {
        guard let keys = try load(current) else {
            throw LifeboatError(.notFound, "repository '\(repository)' (\(store.location)) has no key set yet: it is created by the first backup with encryption",
                                hint: "Run a backup first, or configure the new key and let the first backup create the key set.")
        }
        let record = try KeyFileRecord.seal(keys, with: new, created: now, random: random)
        do {
            try store.put(key: KeyFileRecord.key(id: new.id), bytes: Array(try JSON.encode(record)), ifAbsent: true)
        } catch let error as LifeboatError where error.code == .alreadyExists {
            throw LifeboatError(.usage, "the key in \(new.origin) already opens repository '\(repository)' (id \(new.id))", underlying: error)
        }
        return record
    }

    /// Removes a key file. Refuses to remove the last one, or the one in use (`current`)
    /// unless another key opens the repository too (it always does when there are two).
    public func remove(id: String, current: MasterKey) throws {
        _ = try load(current)  // the caller must hold a key that opens the repository
        let ids = try records().map(\.id)
        guard ids.contains(id) else {
            throw LifeboatError(.notFound, "repository '\(repository)' has no key '\(id)'", hint: "Its keys are: \(ids.joined(separator: ", ")).")
        }
        guard ids.count > 1 else {
            throw LifeboatError(.usage, "key '\(id)' is the last key of repository '\(repository)'; without it nothing in the repository can be read",
                                hint: "Add another key first ('lifeboat key add').")
        }
        try store.delete(keys: [KeyFileRecord.key(id: id)])
    }
}

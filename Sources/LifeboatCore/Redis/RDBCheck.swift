/// Checks a Redis RDB file as its bytes go by, without holding it: the magic `REDIS` and the
/// 4-digit format version at the start, the end-of-file opcode (0xFF) and, from version 5 on,
/// the CRC-64 (Jones, see `CRC64Jones`) of everything before the last 8 bytes, which those
/// bytes hold little-endian — what Redis checks when it loads the file
/// (`rdbLoadRio`) and `redis-check-rdb` reports.
///
/// A stored checksum of 0 means the server saved with `rdbchecksum no`: the file is accepted
/// and `Summary.checksumDisabled` says so, so the caller can warn.
public struct RDBCheck: Sendable {
    /// What a whole, intact file was.
    public struct Summary: Sendable, Equatable {
        /// The RDB format version (10 for Redis 7.0, 11 for 7.2, 12 for 7.4).
        public var version: Int
        public var size: Int64
        /// The CRC-64 the file holds and matches; nil when it holds none (version < 5) or 0.
        public var checksum: UInt64?
        /// The server saved the file without a checksum (`rdbchecksum no`): only its header
        /// and end could be checked.
        public var checksumDisabled: Bool

        public init(version: Int, size: Int64, checksum: UInt64?, checksumDisabled: Bool) {
            self.version = version
            self.size = size
            self.checksum = checksum
            self.checksumDisabled = checksumDisabled
        }

        /// The checksum as Redis prints it (16 hex digits), or nil.
        public var checksumHex: String? {
            checksum.map { value in
                let digits = String(value, radix: 16)
                return String(repeating: "0", count: 16 - digits.count) + digits
            }
        }
    }

    /// The first version whose files end with a CRC-64.
    public static let firstVersionWithChecksum = 5
    static let magic = Array("REDIS".utf8)
    static let headerSize = 9
    static let endOfFileOpcode: UInt8 = 0xff

    /// The file, for messages: "RDB file 'dump.rdb' received from Redis at db:6379".
    public let what: String
    /// What to do when the file is damaged, for the error's hint.
    public let hint: String

    private var header: [UInt8] = []
    private var crc = CRC64Jones()
    /// The last bytes seen, not yet in the CRC: the trailer, once the file is whole.
    private var held: [UInt8] = []
    /// The last byte that went into the CRC: the end-of-file opcode, once the file is whole.
    private var lastChecked: UInt8?
    public private(set) var size: Int64 = 0
    /// The format version, once the header has been seen.
    public private(set) var version: Int?

    public init(what: String, hint: String) {
        self.what = what
        self.hint = hint
    }

    /// Takes the next bytes of the file. Throws `.integrity` as soon as the header shows that
    /// this is not an RDB file.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        if header.count < Self.headerSize {
            header += bytes.prefix(Self.headerSize - header.count)
            if header.count == Self.headerSize { version = try checkHeader() }
        }
        size += Int64(bytes.count)
        // Everything but the last 8 bytes goes into the CRC; those 8 wait in `held`.
        let trailer = 8
        if bytes.count >= trailer {
            checkHeld()
            let body = UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - trailer)])
            crc.update(body)
            if let last = body.last { lastChecked = last }
            held = Array(bytes[(bytes.count - trailer)...])
        } else {
            held += bytes
            if held.count > trailer {
                let overflow = held.count - trailer
                var updated = crc
                held.withUnsafeBytes { updated.update(UnsafeRawBufferPointer(rebasing: $0[0..<overflow])) }
                crc = updated
                lastChecked = held[overflow - 1]
                held.removeFirst(overflow)
            }
        }
    }

    public mutating func update(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try update($0) }
    }

    /// Puts every held byte into the CRC (before a block of at least 8 new bytes replaces them).
    private mutating func checkHeld() {
        guard !held.isEmpty else { return }
        var updated = crc
        held.withUnsafeBytes { updated.update($0) }
        crc = updated
        lastChecked = held.last
        held.removeAll(keepingCapacity: true)
    }

    /// The file is complete: checks its end. Returns what it was, or throws `.integrity`
    /// saying what is wrong.
    public func finish() throws -> Summary {
        guard let version, header.count == Self.headerSize else {
            throw failure("is \(size) bytes long, too short to be an RDB file (\(Self.headerSize) bytes of header)")
        }
        guard version >= Self.firstVersionWithChecksum else {
            // No trailer: the file ends with the end-of-file opcode.
            guard (held.last ?? lastChecked) == Self.endOfFileOpcode else {
                throw failure("does not end with the RDB end-of-file marker (0xFF): it is truncated or damaged")
            }
            return Summary(version: version, size: size, checksum: nil, checksumDisabled: false)
        }
        guard size >= Int64(Self.headerSize + 1 + 8), held.count == 8 else {
            throw failure("is \(size) bytes long, too short for an RDB file of version \(version) (header, end-of-file marker and 8-byte checksum)")
        }
        guard lastChecked == Self.endOfFileOpcode else {
            throw failure("does not end with the RDB end-of-file marker (0xFF) before its checksum: it is truncated or damaged")
        }
        let stored = held.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        if stored == 0 {
            return Summary(version: version, size: size, checksum: nil, checksumDisabled: true)
        }
        guard stored == crc.value else {
            let summary = Summary(version: version, size: size, checksum: crc.value, checksumDisabled: false)
            let expected = Summary(version: version, size: size, checksum: stored, checksumDisabled: false)
            throw failure("fails its CRC-64 check: the file holds \(expected.checksumHex ?? "?"), its \(size) bytes give \(summary.checksumHex ?? "?"); it is damaged")
        }
        return Summary(version: version, size: size, checksum: stored, checksumDisabled: false)
    }

    private func checkHeader() throws -> Int {
        let digits = header[Self.magic.count...]
        guard Array(header.prefix(Self.magic.count)) == Self.magic,
              digits.allSatisfy({ (0x30...0x39).contains($0) }),
              let version = Int(String(decoding: digits, as: UTF8.self))
        else {
            throw failure("is not an RDB file: it starts with \(Self.printable(header)), not 'REDIS' and a 4-digit version")
        }
        return version
    }

    private func failure(_ problem: String) -> LifeboatError {
        LifeboatError(.integrity, "\(what) \(problem)", hint: hint)
    }

    /// Bytes as text where they are printable ASCII, `\xNN` elsewhere, in quotes.
    static func printable(_ bytes: [UInt8]) -> String {
        var text = "'"
        for byte in bytes {
            if (0x20..<0x7f).contains(byte), byte != 0x27, byte != 0x5c {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16)
                text += "\\x" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return text + "'"
    }
}

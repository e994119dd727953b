import Foundation

/// A snapshot's listing as JSON lines, one object per line, in key order:
///
/// ```
/// {"key":"photos/a.jpg","size":1234,"etag":"\"9b2c…\"","modified":1764444444123,"type":"image/jpeg",
///  "meta":{"owner":"ann"},"headers":{"cache-control":"max-age=60"},"blob":"sha256:3a7b…"}
/// ```
///
/// `type`, `meta` and `headers` are left out when empty. A key whose bytes are not valid UTF-8
/// (S3 keys always are, but the format does not depend on it) is written as its display form
/// under `key` plus the exact bytes in base64 under `keyBase64`. Readers ignore members they do
/// not know, so later versions can add some. Hand-written rather than `JSONEncoder`: a bucket
/// of millions of keys is read and written line by line, and the strings must stay exactly the
/// bytes they were (no normalisation).
///
/// The same line format (with a placeholder blob) serves the temporary sorted runs of a
/// listing being taken (`encode(listed:)`).
public enum MirrorListingCodec {
    public static func encode(_ entry: MirrorEntry) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + entry.key.count)
        out += Array(#"{"key":"#.utf8)
        appendKey(entry.key, to: &out)
        out += Array(#","size":"#.utf8) + Array(String(entry.size).utf8)
        out += Array(#","etag":"#.utf8)
        appendString(Array(entry.etag.utf8), to: &out)
        out += Array(#","modified":"#.utf8) + Array(String(entry.modified).utf8)
        if let type = entry.contentType {
            out += Array(#","type":"#.utf8)
            appendString(Array(type.utf8), to: &out)
        }
        for (name, fields) in [("meta", entry.metadata), ("headers", entry.headers)] where !fields.isEmpty {
            out += Array(",\"\(name)\":{".utf8)
            for (index, field) in fields.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendString(Array(field.name.utf8), to: &out)
                out.append(UInt8(ascii: ":"))
                appendString(Array(field.value.utf8), to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out += Array(#","blob":"#.utf8)
        appendString(Array(entry.blob.description.utf8), to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A listed object (no content yet) as a line of a temporary sorted run.
    public static func encode(listed object: MirrorListedObject) -> [UInt8] {
        encode(MirrorEntry(key: object.key, size: object.size, etag: object.etag, modified: object.modified,
                           blob: placeholder))
    }

    /// The blob a listed object has before its content is known (temporary runs only).
    static let placeholder = BlobAddress(sha256: [UInt8](repeating: 0, count: 32))

    public static func decodeListed(_ line: some Collection<UInt8>) throws -> MirrorListedObject {
        let entry = try decode(line)
        return MirrorListedObject(key: entry.key, size: entry.size, etag: entry.etag, modified: entry.modified)
    }

    /// Reads one line (without its newline). Throws `.integrity` naming what is wrong.
    public static func decode(_ line: some Collection<UInt8>) throws -> MirrorEntry {
        var parser = LineParser(bytes: Array(line))
        let members: [(String, LineParser.Value)]
        do {
            members = try parser.document()
        } catch {
            throw LifeboatError(.integrity, "listing line is not valid JSON: \(error.description)")
        }
        var key: [UInt8]?, keyBase64: String?, size: Int64?, etag: String?, modified: Int64?, type: String?
        var metadata: [MirrorHeader] = [], headers: [MirrorHeader] = [], blob: BlobAddress?
        for (name, value) in members {
            switch (name, value) {
            case ("key", .string(let bytes)): key = bytes
            case ("keyBase64", .string(let bytes)): keyBase64 = String(decoding: bytes, as: UTF8.self)
            case ("size", .integer(let n)): size = n
            case ("etag", .string(let bytes)): etag = String(decoding: bytes, as: UTF8.self)
            case ("modified", .integer(let n)): modified = n
            case ("type", .string(let bytes)): type = String(decoding: bytes, as: UTF8.self)
            case ("meta", .object(let fields)): metadata = fields
            case ("headers", .object(let fields)): headers = fields
            case ("blob", .string(let bytes)): blob = BlobAddress(parsing: String(decoding: bytes, as: UTF8.self))
            case ("key", _), ("keyBase64", _), ("size", _), ("etag", _), ("modified", _), ("type", _), ("meta", _),
                 ("headers", _), ("blob", _):
                throw LifeboatError(.integrity, "listing line has a malformed '\(name)'")
            default:
                continue  // a member a later version added
            }
        }
        if let keyBase64 {
            guard let data = Data(base64Encoded: keyBase64) else {
                throw LifeboatError(.integrity, "listing line has a 'keyBase64' that is not base64")
            }
            key = [UInt8](data)
        }
        guard let key, let size, size >= 0, let etag, let modified, let blob else {
            let missing = [("key", key == nil), ("size", size == nil || size! < 0), ("etag", etag == nil),
                           ("modified", modified == nil), ("blob", blob == nil)].filter(\.1).map(\.0)
            throw LifeboatError(.integrity, "listing line lacks a valid \(missing.joined(separator: ", "))")
        }
        return MirrorEntry(key: key, size: size, etag: etag, modified: modified, contentType: type,
                           metadata: metadata, headers: headers, blob: blob)
    }

    static func appendKey(_ key: [UInt8], to out: inout [UInt8]) {
        if String(validating: key, as: UTF8.self) != nil {
            appendString(key, to: &out)
        } else {
            appendString(Array(String(decoding: key, as: UTF8.self).utf8), to: &out)
            out += Array(#","keyBase64":"#.utf8)
            appendString(Array(Data(key).base64EncodedString().utf8), to: &out)
        }
    }

    /// A JSON string of valid UTF-8 bytes: quotes, backslashes and control characters escaped,
    /// every other byte as it is.
    static func appendString(_ bytes: [UInt8], to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20, 0x7F:
                out += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// The JSON a listing line holds: one object whose members are strings, integers, or objects
/// of strings; anything else (a member a later version added) is parsed and skipped.
private struct LineParser {
    enum Value {
        case string([UInt8])
        case integer(Int64)
        case object([MirrorHeader])
        case other
    }

    struct Failure: Error {
        let description: String
    }

    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ message: String) -> Failure { Failure(description: "\(message) at byte \(i)") }

    mutating func document() throws(Failure) -> [(String, Value)] {
        skipSpace()
        let members = try object(depth: 0)
        skipSpace()
        guard i == bytes.count else { throw fail("content after the object") }
        return members
    }

    mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    mutating func expect(_ byte: UInt8) throws(Failure) {
        skipSpace()
        guard i < bytes.count, bytes[i] == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
        i += 1
    }

    mutating func object(depth: Int) throws(Failure) -> [(String, Value)] {
        guard depth < 32 else { throw fail("nested too deeply") }
        try expect(UInt8(ascii: "{"))
        var members: [(String, Value)] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return members
        }
        while true {
            skipSpace()
            let name = String(decoding: try string(), as: UTF8.self)
            try expect(UInt8(ascii: ":"))
            members.append((name, try value(depth: depth)))
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated object") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            try expect(UInt8(ascii: "}"))
            return members
        }
    }

    mutating func value(depth: Int) throws(Failure) -> Value {
        skipSpace()
        guard i < bytes.count else { throw fail("expected a value") }
        switch bytes[i] {
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "{"):
            let members = try object(depth: depth + 1)
            var fields: [MirrorHeader] = []
            for (name, value) in members {
                guard case .string(let text) = value else { return .other }
                fields.append(MirrorHeader(name, String(decoding: text, as: UTF8.self)))
            }
            return .object(fields)
        case UInt8(ascii: "["):
            guard depth < 32 else { throw fail("nested too deeply") }
            i += 1
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
                i += 1
                return .other
            }
            while true {
                _ = try value(depth: depth + 1)
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated array") }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return .other
            }
        default:
            let start = i
            while i < bytes.count, !",}] \t\r\n".utf8.contains(bytes[i]) { i += 1 }
            let word = String(decoding: bytes[start..<i], as: UTF8.self)
            if let n = Int64(word) { return .integer(n) }
            guard ["true", "false", "null"].contains(word) || Double(word) != nil else { throw fail("unexpected '\(word)'") }
            return .other
        }
    }

    mutating func string() throws(Failure) -> [UInt8] {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[i]
            i += 1
            switch byte {
            case UInt8(ascii: "\""):
                return out
            case UInt8(ascii: "\\"):
                guard i < bytes.count else { throw fail("unterminated escape") }
                let escaped = bytes[i]
                i += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out += Array(String(Character(unicode)).utf8)
                default:
                    throw fail("invalid escape")
                }
            default:
                out.append(byte)
            }
        }
    }

    mutating func hex4() throws(Failure) -> UInt32 {
        guard i + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
            throw fail("invalid \\u escape")
        }
        i += 4
        return value
    }
}

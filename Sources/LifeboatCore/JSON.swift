import Foundation

/// JSON as Lifeboat writes it: sorted keys, ISO 8601 dates, readable.
public enum JSON {
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(value)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: data)
    }

    /// `value` as one line of a record file (run history, drill history, `wal-push` failures):
    /// compact, sorted keys, ISO 8601 dates, with its newline.
    public static func line<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    /// Reads a record file, one `T` a line, in file order. A line that does not parse — the
    /// torn last line of a write cut short by a crash, or a damaged one — is skipped and
    /// counted; blank lines are ignored.
    public static func decodeLines<T: Decodable>(_ type: T.Type, from data: Data) -> (records: [T], unreadable: Int) {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        var records: [T] = []
        var unreadable = 0
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.allSatisfy({ $0 == UInt8(ascii: " ") }) {
            if let record = try? decoder.decode(type, from: Data(line)) { records.append(record) } else { unreadable += 1 }
        }
        return (records, unreadable)
    }
}

/// Any JSON value, kept as it was read: the part of a manifest a source kind owns, carried by
/// the core without knowing its shape.
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The JSON of an encodable value, as Lifeboat writes it (ISO 8601 dates).
    public init<T: Encodable>(encoding value: T) throws {
        self = try JSON.decode(JSONValue.self, from: try JSON.encode(value))
    }

    /// Decodes a typed value from this JSON.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSON.decode(type, from: try JSON.encode(self))
    }
}

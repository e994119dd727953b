import LifeboatCore

/// A name as the file system has it: bytes, which need not be valid UTF-8. Used for the paths
/// of entries and for the targets of links.
///
/// Lifeboat stores names byte for byte; `description` is a display form for messages and
/// manifests (each byte that is not valid UTF-8 shown as U+FFFD), never used to name a file.
public struct EntryPath: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The UTF-8 bytes of `string`.
    public init(_ string: String) { bytes = Array(string.utf8) }

    public init(stringLiteral value: String) { self.init(value) }

    /// The exact bytes of a recorded entry's path.
    public init(recordedPathOf record: EntryRecord) { bytes = record.rawPath }

    public var description: String { String(decoding: bytes, as: UTF8.self) }

    /// The display form and, when the bytes are not valid UTF-8, their base64 (as stored in a
    /// manifest).
    var recorded: (display: String, base64: String?) { RecordedName.encode(bytes) }

    /// `self/component`, or `component` when `self` is empty.
    func appending(_ component: [UInt8]) -> EntryPath {
        if bytes.isEmpty { return EntryPath(bytes: component) }
        return EntryPath(bytes: bytes + [UInt8(ascii: "/")] + component)
    }

    /// True when the path stays inside the directory it is extracted into: not empty, not
    /// absolute, and without a `..` component.
    var isContainedRelativePath: Bool {
        guard let first = bytes.first, first != UInt8(ascii: "/") else { return false }
        return !bytes.split(separator: UInt8(ascii: "/")).contains { $0.elementsEqual("..".utf8) }
    }

    /// The bytes followed by a NUL, for C functions; nil when they hold a NUL themselves
    /// (which no file name can).
    var cString: [CChar]? {
        guard !bytes.contains(0) else { return nil }
        return bytes.map { CChar(bitPattern: $0) } + [0]
    }
}

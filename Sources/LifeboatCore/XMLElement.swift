/// A minimal XML reader for the documents S3 returns (`ListBucketResult`, `Error`,
/// `InitiateMultipartUploadResult`, `DeleteResult`, …): elements, text, the five named
/// entities and numeric character references. Attributes are read and ignored; comments,
/// processing instructions and the XML declaration are skipped. Not a general XML parser:
/// no DTDs, no CDATA beyond plain text, no namespaces beyond ignoring prefixes' meaning.
public struct XMLNode: Sendable, Equatable {
    public var name: String
    public var text: String
    public var children: [XMLNode]

    public init(name: String, text: String = "", children: [XMLNode] = []) {
        self.name = name
        self.text = text
        self.children = children
    }

    /// The first child element with this name.
    public func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }

    /// Every child element with this name.
    public func all(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }

    /// The text of the first child element with this name.
    public subscript(_ name: String) -> String? { child(name)?.text }

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// The deepest nesting of elements a document may have. S3's documents nest a few levels;
    /// the reader recurses once per level, so a hostile body nesting thousands of elements
    /// would otherwise overflow the stack.
    public static let maximumDepth = 128

    /// Parses a document and returns its root element.
    public static func parse(_ bytes: [UInt8]) throws(ParseError) -> XMLNode {
        var parser = MiniXMLParser(bytes: bytes)
        return try parser.document()
    }

    public static func parse(_ text: String) throws(ParseError) -> XMLNode { try parse(Array(text.utf8)) }

    /// Escapes text for inclusion in an XML document we write (DeleteObjects, CompleteMultipartUpload).
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // Control characters are not allowed raw in XML 1.0 text; S3 keys may hold them.
                if scalar.value < 0x20, scalar != "\t", scalar != "\n", scalar != "\r" {
                    out += "&#\(scalar.value);"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

private struct MiniXMLParser {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ message: String) -> XMLNode.ParseError {
        XMLNode.ParseError(description: "malformed XML at byte \(i): \(message)")
    }

    mutating func document() throws(XMLNode.ParseError) -> XMLNode {
        try skipMisc()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "<") else { throw fail("expected the root element") }
        let root = try element(depth: 1)
        try skipMisc()
        guard i == bytes.count else { throw fail("content after the root element") }
        return root
    }

    /// Skips white space, the XML declaration, comments and processing instructions.
    mutating func skipMisc() throws(XMLNode.ParseError) {
        while true {
            while i < bytes.count, isSpace(bytes[i]) { i += 1 }
            if starts(with: "<?") {
                try skip(past: "?>")
            } else if starts(with: "<!--") {
                try skip(past: "-->")
            } else if starts(with: "<!") {
                try skip(past: ">")
            } else {
                return
            }
        }
    }

    mutating func element(depth: Int) throws(XMLNode.ParseError) -> XMLNode {
        guard depth <= XMLNode.maximumDepth else { throw fail("elements nested more than \(XMLNode.maximumDepth) deep") }
        i += 1  // <
        let name = readName()
        guard !name.isEmpty else { throw fail("expected an element name") }
        // Attributes: skipped, minding quoted values.
        while i < bytes.count, bytes[i] != UInt8(ascii: ">"), bytes[i] != UInt8(ascii: "/") {
            if bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") {
                let quote = bytes[i]
                i += 1
                while i < bytes.count, bytes[i] != quote { i += 1 }
            }
            i += 1
        }
        guard i < bytes.count else { throw fail("unterminated start tag <\(name)>") }
        if bytes[i] == UInt8(ascii: "/") {
            i += 1
            guard i < bytes.count, bytes[i] == UInt8(ascii: ">") else { throw fail("expected '>' after '/' in <\(name)>") }
            i += 1
            return XMLNode(name: localName(name))
        }
        i += 1  // >
        var node = XMLNode(name: localName(name))
        var text: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated element <\(name)>") }
            if bytes[i] == UInt8(ascii: "<") {
                if starts(with: "</") {
                    i += 2
                    let closing = readName()
                    guard closing == name else { throw fail("</\(closing)> closes <\(name)>") }
                    while i < bytes.count, isSpace(bytes[i]) { i += 1 }
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ">") else { throw fail("expected '>' in </\(name)>") }
                    i += 1
                    node.text = try decodeEntities(text)
                    return node
                } else if starts(with: "<!--") {
                    try skip(past: "-->")
                } else if starts(with: "<![CDATA[") {
                    i += 9
                    let start = i
                    try skip(past: "]]>")
                    text += bytes[start..<(i - 3)]
                } else {
                    node.children.append(try element(depth: depth + 1))
                }
            } else {
                text.append(bytes[i])
                i += 1
            }
        }
    }

    mutating func readName() -> String {
        let start = i
        while i < bytes.count, !isSpace(bytes[i]), bytes[i] != UInt8(ascii: ">"), bytes[i] != UInt8(ascii: "/") { i += 1 }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    func localName(_ name: String) -> String {
        guard let colon = name.lastIndex(of: ":") else { return name }
        return String(name[name.index(after: colon)...])
    }

    func starts(with prefix: String) -> Bool {
        let p = Array(prefix.utf8)
        return i + p.count <= bytes.count && bytes[i..<(i + p.count)].elementsEqual(p)
    }

    mutating func skip(past terminator: String) throws(XMLNode.ParseError) {
        let t = Array(terminator.utf8)
        while i + t.count <= bytes.count {
            if bytes[i..<(i + t.count)].elementsEqual(t) {
                i += t.count
                return
            }
            i += 1
        }
        throw fail("missing '\(terminator)'")
    }

    func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    func decodeEntities(_ raw: [UInt8]) throws(XMLNode.ParseError) -> String {
        guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
        var out: [UInt8] = []
        var j = 0
        while j < raw.count {
            guard raw[j] == UInt8(ascii: "&") else {
                out.append(raw[j])
                j += 1
                continue
            }
            guard let end = raw[j...].firstIndex(of: UInt8(ascii: ";")) else { throw fail("unterminated entity") }
            let entity = String(decoding: raw[(j + 1)..<end], as: UTF8.self)
            switch entity {
            case "amp": out.append(UInt8(ascii: "&"))
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "quot": out.append(UInt8(ascii: "\""))
            case "apos": out.append(UInt8(ascii: "'"))
            default:
                var value: UInt32?
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    value = UInt32(entity.dropFirst(2), radix: 16)
                } else if entity.hasPrefix("#") {
                    value = UInt32(entity.dropFirst(), radix: 10)
                }
                guard let value, let scalar = Unicode.Scalar(value) else { throw fail("unknown entity '&\(entity);'") }
                out += Array(String(Character(scalar)).utf8)
            }
            j = end + 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

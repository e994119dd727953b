/// Where the scheduler's HTTP listener binds (`listen:` in lifeboat.yaml, `--listen`):
/// `host:port`, `[ipv6]:port`, `:port` (every interface), or `off`.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    case off
    /// `host` empty: every interface.
    case address(host: String, port: Int)

    public static let `default` = ListenAddress.address(host: "127.0.0.1", port: 9187)

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public init(parsing text: String) throws(ParseError) {
        if text == "off" {
            self = .off
            return
        }
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ParseError(description: "'\(text)' is not a listen address: an IPv6 address is written [address]:port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw ParseError(description: "'\(host)' in '\(text)' is not an IPv6 address")
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ParseError(description: "'\(text)' is not a listen address: the port is missing (host:port, :port or off)")
            }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            guard !host.contains(":") else {
                throw ParseError(description: "'\(text)' is not a listen address: write an IPv6 address in brackets, [::1]:9187")
            }
            guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }), host.allSatisfy(\.isASCII) else {
                throw ParseError(description: "'\(host)' in '\(text)' is not a host name or address")
            }
        }
        guard let number = Int(port), (0...65535).contains(number), port.allSatisfy(\.isASCII) else {
            throw ParseError(description: "'\(port)' in '\(text)' is not a port (0 to 65535)")
        }
        self = .address(host: String(host), port: number)
    }

    /// As written: `127.0.0.1:9187`, `[::1]:9187`, `:9187`, `off`.
    public var description: String {
        switch self {
        case .off: return "off"
        case .address(let host, let port):
            return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

import Foundation

/// The scheduler's `/metrics` token (`listen_token_file:` in lifeboat.yaml): a request must
/// carry `Authorization: Bearer <token>`. The comparison takes the same time wherever the
/// first difference is, so the answer's timing does not reveal how much of a guess was right.
public struct BearerToken: Sendable {
    private let bytes: [UInt8]

    /// The token as read from its file: surrounding white space (the file's final newline)
    /// is not part of it. Nil when nothing is left.
    public init?(fileText: String) {
        let token = fileText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { return nil }
        bytes = Array(token.utf8)
    }

    /// Whether an `Authorization` header value is `Bearer <this token>` (the scheme's case
    /// does not matter, as RFC 9110 says).
    public func accepts(authorization: String?) -> Bool {
        guard let authorization else { return false }
        let value = Array(authorization.utf8)
        let scheme = Array("bearer ".utf8)
        guard value.count > scheme.count,
              value[..<scheme.count].map({ $0 | 0x20 }) == scheme.map({ $0 | 0x20 })
        else { return false }
        return Self.constantTimeEqual(Array(value[scheme.count...]), bytes)
    }

    /// Equal bytes, in a time that depends on the lengths only.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}

/// The one error type Lifeboat reports to a person.
///
/// A struct with a `Code` rather than a public enum, so that adding a kind of failure does not
/// break callers who switch over it. It carries what a person on call needs: what failed
/// (`message`), on which object (`context`), and what to do about it (`hint`). The exit
/// status of the command line follows from the code alone.
public struct LifeboatError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// Bad input from the user: arguments, configuration, a target that is not usable.
        public let isBadInput: Bool

        public init(_ name: String, badInput: Bool) {
            self.name = name
            self.isBadInput = badInput
        }

        public var description: String { name }

        // Bad input (exit status 2)
        public static let usage = Code("usage", badInput: true)
        public static let configuration = Code("configuration", badInput: true)
        public static let notFound = Code("not-found", badInput: true)
        public static let targetNotEmpty = Code("target-not-empty", badInput: true)

        // Operation failed (exit status 1)
        public static let io = Code("io", badInput: false)
        public static let storage = Code("storage", badInput: false)
        /// A conditional write found its key taken: the object there is never replaced.
        public static let alreadyExists = Code("already-exists", badInput: false)
        public static let archive = Code("archive", badInput: false)
        public static let postgres = Code("postgres", badInput: false)
        public static let process = Code("process", badInput: false)
        public static let integrity = Code("integrity", badInput: false)
        /// An encryption key that does not open a repository, or a damaged key file.
        public static let encryption = Code("encryption", badInput: false)
        public static let source = Code("source", badInput: false)
        public static let internalError = Code("internal", badInput: false)
    }

    public let code: Code
    /// One sentence: what failed, naming the object ("unable to open file '/x' for read").
    public var message: String
    /// A whole sentence saying what to do, when there is something to do.
    public var hint: String?
    /// The error that caused this one, for `--verbose` cause chains.
    public var underlying: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, hint: String? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
        self.underlying = underlying
    }

    /// `message` followed by `HINT: …` on its own line when there is a hint.
    public var description: String {
        guard let hint else { return message }
        return "\(message)\nHINT: \(hint)"
    }

    /// Exit status for the command line: 2 for bad input, 1 for a failed operation.
    public var exitStatus: Int32 { code.isBadInput ? 2 : 1 }

    /// Returns a copy whose message is prefixed with more context ("backup hub-postgres: …").
    public func prefixed(_ context: String) -> LifeboatError {
        var copy = self
        copy.message = "\(context): \(message)"
        return copy
    }
}

/// Several errors found in one pass (configuration checking reports all of them).
public struct LifeboatErrors: Error, CustomStringConvertible, Sendable {
    public var errors: [LifeboatError]
    public init(_ errors: [LifeboatError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
    public var exitStatus: Int32 { errors.contains { !$0.code.isBadInput } ? 1 : 2 }
}

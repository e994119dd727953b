import CLibPQ
import Glibc
import LifeboatCore

/// Where and as whom to connect to PostgreSQL: the keyword/value pairs of a libpq conninfo.
///
/// Built from a conninfo string (`host=db port=5432 user=backup`) or a `postgresql://` URI,
/// parsed by libpq itself (`PQconninfoParse`), so it accepts exactly what libpq accepts.
/// Only the keywords that were set are kept; the accessors fill in libpq's defaults.
///
/// The password never appears in `description`, `safeDescription`, messages or
/// `conninfoWithoutPassword()`: it only leaves through `clientEnvironment()` (as
/// `PGPASSWORD`) and the keyword arrays of `PQconnectdbParams`.
public struct PostgresConnectionParameters: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// One keyword set in the conninfo, in libpq's order of keywords. Printing it hides the
    /// value of a secret keyword.
    public struct Setting: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
        public var keyword: String
        public var value: String

        public init(keyword: String, value: String) {
            self.keyword = keyword
            self.value = value
        }

        public var description: String {
            PostgresConnectionParameters.secretKeywords.contains(keyword) ? "\(keyword)=********" : "\(keyword)=\(value)"
        }

        public var debugDescription: String { description }
    }

    /// Keywords whose values are secrets: never shown, never put on a command line.
    static let secretKeywords: Set<String> = ["password", "sslpassword"]

    /// The keywords that were set, in libpq's order.
    public private(set) var settings: [Setting]
    /// The password to use when the conninfo has none (for example the value of
    /// `PGPASSWORD` or of a password file named in the configuration).
    public var passwordOverride: String?

    /// Parses a libpq conninfo string or `postgresql://` URI.
    ///
    /// - Throws: `LifeboatError(.configuration)` with libpq's reason when it is invalid. The
    ///   message never repeats the conninfo (it may hold a password); fragments that libpq
    ///   quotes from it are elided unless they are connection keywords.
    public init(conninfo: String, passwordOverride: String? = nil) throws {
        var errorPointer: UnsafeMutablePointer<CChar>?
        let options = PQconninfoParse(conninfo, &errorPointer)
        // Read libpq's message at once, then free it.
        let libpqMessage = errorPointer.map { String(cString: $0) }
        if let errorPointer { PQfreemem(errorPointer) }
        guard let options else {
            let reason = libpqMessage.map { Self.elidingQuotedFragments($0.trimmedOfWhitespace()) } ?? "out of memory"
            throw LifeboatError(
                .configuration, "invalid PostgreSQL conninfo: \(reason)",
                hint: "Write the connection as 'key=value' pairs (host=db.example.com port=5432 user=backup dbname=app) or as a postgresql:// URI; quote values holding spaces with single quotes.")
        }
        defer { PQconninfoFree(options) }
        var settings: [Setting] = []
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                settings.append(Setting(keyword: String(cString: keyword), value: String(cString: value)))
            }
            option += 1
        }
        self.settings = settings
        self.passwordOverride = passwordOverride
    }

    /// Parameters from keyword/value pairs (no parsing; keywords are not checked here but
    /// by libpq when connecting).
    public init(settings: [Setting], passwordOverride: String? = nil) {
        self.settings = settings
        self.passwordOverride = passwordOverride
    }

    /// The value set for a conninfo keyword, if any (no defaults).
    public func value(for keyword: String) -> String? {
        settings.first { $0.keyword == keyword }?.value
    }

    /// A copy with `keyword` set to `value` (or removed when `value` is nil).
    public func setting(_ keyword: String, to value: String?) -> PostgresConnectionParameters {
        var copy = self
        if let index = copy.settings.firstIndex(where: { $0.keyword == keyword }) {
            if let value {
                copy.settings[index].value = value
            } else {
                copy.settings.remove(at: index)
            }
        } else if let value {
            copy.settings.append(Setting(keyword: keyword, value: value))
        }
        return copy
    }

    /// A copy that connects to another database.
    public func with(database: String) -> PostgresConnectionParameters {
        setting("dbname", to: database)
    }

    // MARK: Values with libpq's defaults

    /// The host (or socket directory): `host`, else `hostaddr`, else `PGHOST`, else
    /// `/var/run/postgresql`.
    public var host: String {
        value(for: "host") ?? value(for: "hostaddr") ?? environmentValue("PGHOST")
            ?? environmentValue("PGHOSTADDR") ?? "/var/run/postgresql"
    }

    /// The port: `port`, else `PGPORT`, else 5432. With a list of ports, the first.
    public var port: Int {
        let text = value(for: "port") ?? environmentValue("PGPORT") ?? "5432"
        let first = text.split(separator: ",").first.map(String.init) ?? text
        return Int(first.trimmedOfWhitespace()) ?? 5432
    }

    /// The user name: `user`, else `PGUSER`, else the name of the current OS user.
    public var user: String {
        value(for: "user") ?? environmentValue("PGUSER") ?? Self.currentOSUser()
    }

    /// The database: `dbname`, else `PGDATABASE`, else the user name.
    public var dbname: String {
        value(for: "dbname") ?? environmentValue("PGDATABASE") ?? user
    }

    /// The password: from the conninfo, else `passwordOverride`. Nil when neither is set
    /// (libpq may still find one in `PGPASSWORD` or `~/.pgpass`).
    public var password: String? {
        value(for: "password") ?? passwordOverride
    }

    /// `host:port`, for messages.
    public var endpoint: String { "\(host):\(port)" }

    /// `user@host:port/dbname`, for messages and logs. Never holds the password.
    public var safeDescription: String { "\(user)@\(host):\(port)/\(dbname)" }

    public var description: String { safeDescription }
    public var debugDescription: String { "PostgresConnectionParameters(\(safeDescription))" }
    /// `dump()` and the debugger show the safe description, not the stored password.
    public var customMirror: Mirror { Mirror(self, children: ["safeDescription": safeDescription]) }

    // MARK: For the client programs

    /// Environment entries for the PostgreSQL client programs: `PGPASSWORD` when there is
    /// a password, nothing else.
    public func clientEnvironment() -> [String: String] {
        guard let password else { return [:] }
        return ["PGPASSWORD": password]
    }

    /// The conninfo without secrets, as `key='value'` pairs, to pass as `--dbname=` to
    /// pg_dump, pg_restore and psql. Backslashes and single quotes in values are escaped.
    ///
    /// Leaves out `password` (passed through `clientEnvironment()` instead) and
    /// `sslpassword` (a command line is visible to every user of the machine).
    public func conninfoWithoutPassword() -> String {
        settings
            .filter { !Self.secretKeywords.contains($0.keyword) }
            .map { "\($0.keyword)=\(Self.quoted($0.value))" }
            .joined(separator: " ")
    }

    /// A conninfo value in single quotes, with `\` and `'` escaped by a backslash.
    static func quoted(_ value: String) -> String {
        var result = "'"
        for character in value {
            if character == "\\" || character == "'" { result.append("\\") }
            result.append(character)
        }
        result.append("'")
        return result
    }

    // MARK: For PQconnectdbParams

    /// The keyword/value pairs to connect with: the settings, the password override when
    /// the conninfo has no password, and Lifeboat's defaults for `connect_timeout` (10 s)
    /// and `application_name` (`lifeboat`) unless given.
    func connectionPairs() -> [Setting] {
        var pairs = settings
        if value(for: "password") == nil, let passwordOverride {
            pairs.append(Setting(keyword: "password", value: passwordOverride))
        }
        if value(for: "connect_timeout") == nil {
            pairs.append(Setting(keyword: "connect_timeout", value: "10"))
        }
        if value(for: "application_name") == nil {
            pairs.append(Setting(keyword: "application_name", value: "lifeboat"))
        }
        return pairs
    }

    // MARK: Helpers

    private func environmentValue(_ name: String) -> String? {
        guard let pointer = getenv(name) else { return nil }
        let value = String(cString: pointer)
        return value.isEmpty ? nil : value
    }

    /// The name of the effective OS user, as libpq takes it for the default user name.
    static func currentOSUser() -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let status = getpwuid_r(geteuid(), &entry, &buffer, buffer.count, &result)
        guard status == 0, let found = result, let name = found.pointee.pw_name else {
            return String(geteuid())
        }
        return String(cString: name)
    }

    /// libpq's message with every double-quoted fragment elided unless it is a connection
    /// keyword: such fragments are pieces of the conninfo, which may hold a password.
    static func elidingQuotedFragments(_ message: String) -> String {
        let keywords = knownKeywords()
        var result = ""
        var rest = Substring(message)
        while let open = rest.firstIndex(of: "\"") {
            result += rest[..<open]
            let afterOpen = rest.index(after: open)
            guard let close = rest[afterOpen...].firstIndex(of: "\"") else {
                result += "\"…"
                return result
            }
            let fragment = String(rest[afterOpen..<close])
            if keywords.contains(fragment) || fragment == "=" {
                result += "\"\(fragment)\""
            } else {
                result += "\"…\""
            }
            rest = rest[rest.index(after: close)...]
        }
        result += rest
        return result
    }

    /// Every conninfo keyword this libpq knows (`PQconndefaults`).
    static func knownKeywords() -> Set<String> {
        guard let defaults = PQconndefaults() else { return [] }
        defer { PQconninfoFree(defaults) }
        var keywords: Set<String> = []
        var option = defaults
        while let keyword = option.pointee.keyword {
            keywords.insert(String(cString: keyword))
            option += 1
        }
        return keywords
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    func trimmedOfWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }),
              let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}

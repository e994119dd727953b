import CLibPQ
import Glibc
import LifeboatCore
import Synchronization

/// What a PostgreSQL server says about itself.
public struct PostgresServerInfo: Sendable, Hashable {
    /// `server_version`, e.g. "15.8 (Debian 15.8-1.pgdg120+1)".
    public var version: String
    /// `server_version_num`, e.g. 150008.
    public var versionNumber: Int
    /// The cluster's system identifier (`pg_control_system()`), a decimal number as text.
    /// It tells one cluster from another even when they listen on the same address.
    public var systemIdentifier: String

    /// The major version: 15 for 150008 (9 for 9.6, which is older than anything supported).
    public var majorVersion: Int { versionNumber / 10000 }

    public init(version: String, versionNumber: Int, systemIdentifier: String) {
        self.version = version
        self.versionNumber = versionNumber
        self.systemIdentifier = systemIdentifier
    }
}

/// An error reported by the PostgreSQL server for a statement; carried as the `underlying`
/// error of a `LifeboatError(.postgres)` so that callers can look at the SQLSTATE.
public struct PostgresServerError: Error, Sendable, CustomStringConvertible {
    /// The five-character SQLSTATE ("42P01"), when the server sent one.
    public var sqlState: String?
    /// The primary message ("relation \"x\" does not exist").
    public var message: String

    public var description: String {
        if let sqlState { return "\(message) (SQLSTATE \(sqlState))" }
        return message
    }
}

/// One libpq connection (`PGconn`), closed with `PQfinish` when the object goes away.
///
/// Calls block the calling thread (run them on a thread of your own, not the cooperative
/// pool). A lock serializes them, so the connection may be shared between threads, though
/// statements from several threads simply wait for each other.
public final class PostgresConnection: Sendable {
    /// What this connection was made with (the password is never shown).
    public let parameters: PostgresConnectionParameters
    /// The `PGconn *`; the lock makes sure only one thread uses it at a time, as libpq needs.
    private let connection: Mutex<OpaquePointer>

    private init(parameters: PostgresConnectionParameters, connection: sending OpaquePointer) {
        self.parameters = parameters
        self.connection = Mutex(connection)
    }

    deinit {
        connection.withLock { PQfinish($0) }
    }

    /// Connects with `PQconnectdbParams` (the password goes in the keyword arrays, never in a
    /// URI). `connect_timeout` defaults to 10 seconds and `application_name` to `lifeboat`.
    ///
    /// - Throws: `LifeboatError(.postgres)` saying whether authentication failed, the server
    ///   could not be reached, or the database or role does not exist. The password never
    ///   appears in the error.
    public static func connect(_ parameters: PostgresConnectionParameters) throws -> PostgresConnection {
        let handle = try openHandle(parameters, failure: { connectionError($0, parameters) })
        return PostgresConnection(parameters: parameters, connection: handle)
    }

    /// `PQconnectdbParams` with the parameters' keyword/value pairs and `extra`: the handle of
    /// an established connection, or the error `failure` makes of libpq's message.
    static func openHandle(_ parameters: PostgresConnectionParameters, extra: [PostgresConnectionParameters.Setting] = [],
                           failure: (String) -> LifeboatError) throws -> OpaquePointer {
        let pairs = parameters.connectionPairs() + extra
        let handle = withCStringPointers(pairs.map(\.keyword)) { keywords in
            withCStringPointers(pairs.map(\.value)) { values in
                PQconnectdbParams(keywords, values, 0)
            }
        }
        guard let handle else {
            throw LifeboatError(.postgres, "could not connect to PostgreSQL at \(parameters.endpoint): libpq could not allocate a connection (out of memory)")
        }
        if PQstatus(handle) != CONNECTION_OK {
            // Read libpq's message at once, before PQfinish frees it.
            let message = errorMessage(handle)
            PQfinish(handle)
            throw failure(message)
        }
        return handle
    }

    // MARK: Statements

    /// Runs one SQL statement with `$1`, `$2`… parameters (`PQexecParams`, text format) and
    /// returns the rows as text; SQL NULL is nil. Statements that return no rows return [].
    ///
    /// - Throws: `LifeboatError(.postgres)` with the server's SQLSTATE and primary message;
    ///   the SQL text itself is not repeated (it may hold a secret).
    public func query(_ sql: String, _ params: [String?] = []) throws -> [[String?]] {
        try withConnection { handle in
            let result = withOptionalCStringPointers(params) { values in
                PQexecParams(handle, sql, Int32(params.count), nil, values, nil, nil, 0)
            }
            guard let result else {
                // No result at all: out of memory or the connection is gone.
                throw LifeboatError(
                    .postgres, "query failed on \(parameters.safeDescription): \(Self.errorMessage(handle))",
                    hint: PQstatus(handle) == CONNECTION_BAD ? "The connection to the server was lost; check the server log." : nil)
            }
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                break
            default:
                let serverError = Self.serverError(result, handle)
                throw LifeboatError(
                    .postgres, "query failed on \(parameters.safeDescription): \(serverError)",
                    underlying: serverError)
            }
            let rowCount = PQntuples(result)
            let columnCount = PQnfields(result)
            var rows: [[String?]] = []
            rows.reserveCapacity(Int(rowCount))
            for row in 0..<rowCount {
                var values: [String?] = []
                values.reserveCapacity(Int(columnCount))
                for column in 0..<columnCount {
                    if PQgetisnull(result, row, column) != 0 {
                        values.append(nil)
                    } else {
                        values.append(String(cString: PQgetvalue(result, row, column)))
                    }
                }
                rows.append(values)
            }
            return rows
        }
    }

    /// The server's version and system identifier.
    public func serverInfo() throws -> PostgresServerInfo {
        let rows = try query("""
            select current_setting('server_version'), current_setting('server_version_num'),
                   (select system_identifier::text from pg_control_system())
            """)
        guard let row = rows.first, row.count == 3, let version = row[0],
              let numberText = row[1], let number = Int(numberText), let identifier = row[2] else {
            throw LifeboatError(.postgres, "unexpected answer from \(parameters.safeDescription) when asking for its version")
        }
        return PostgresServerInfo(version: version, versionNumber: number, systemIdentifier: identifier)
    }

    /// The databases that can be backed up: not templates, and allowing connections. Sorted.
    public func listDatabases() throws -> [String] {
        let rows = try query("select datname from pg_catalog.pg_database where not datistemplate and datallowconn")
        return rows.compactMap { $0.first ?? nil }.sorted()
    }

    /// Whether a database of this name exists (templates included).
    public func databaseExists(_ name: String) throws -> Bool {
        try !query("select 1 from pg_catalog.pg_database where datname = $1", [name]).isEmpty
    }

    /// The names of every role on the server.
    public func listRoles() throws -> Set<String> {
        Set(try query("select rolname from pg_catalog.pg_roles").compactMap { $0.first ?? nil })
    }

    /// The names of every tablespace on the server.
    public func listTablespaces() throws -> Set<String> {
        Set(try query("select spcname from pg_catalog.pg_tablespace").compactMap { $0.first ?? nil })
    }

    // MARK: libpq calls

    /// Runs `body` with the `PGconn *`, holding the lock. Every libpq call on the connection
    /// goes through here; on failure, `body` reads `errorMessage` before anything else runs.
    private func withConnection<T: Sendable>(_ body: (OpaquePointer) throws -> T) throws -> T {
        try connection.withLock { handle in try body(handle) }
    }

    /// `PQerrorMessage`, trimmed. Call it right after the failing call.
    static func errorMessage(_ handle: OpaquePointer) -> String {
        guard let pointer = PQerrorMessage(handle) else { return "unknown libpq error" }
        let message = String(cString: pointer).trimmedOfWhitespace()
        return message.isEmpty ? "unknown libpq error" : message
    }

    /// The SQLSTATE and primary message of a failed result.
    static func serverError(_ result: OpaquePointer, _ handle: OpaquePointer) -> PostgresServerError {
        let sqlState = PQresultErrorField(result, diagnosticField("C")).map { String(cString: $0) }
        var message = PQresultErrorField(result, diagnosticField("M")).map { String(cString: $0) } ?? ""
        if message.isEmpty {
            let resultMessage = PQresultErrorMessage(result).map { String(cString: $0).trimmedOfWhitespace() } ?? ""
            message = resultMessage.isEmpty ? errorMessage(handle) : resultMessage
        }
        return PostgresServerError(sqlState: sqlState, message: message)
    }

    /// `PG_DIAG_*` codes are character literals in C ('C' for SQLSTATE, 'M' for the message).
    private static func diagnosticField(_ code: Unicode.Scalar) -> Int32 {
        Int32(code.value)
    }

    /// Turns libpq's connection failure into an error a person can act on.
    static func connectionError(_ libpqMessage: String, _ parameters: PostgresConnectionParameters) -> LifeboatError {
        let reason = redacted(firstReason(libpqMessage), parameters)
        let whole = redacted(detail(libpqMessage), parameters)
        let user = parameters.user
        let endpoint = parameters.endpoint
        let lower = libpqMessage.lowercased()

        if lower.contains("password authentication failed for user") || lower.contains("no password supplied") {
            return LifeboatError(
                .postgres, "PostgreSQL authentication failed for user '\(user)' at \(endpoint)",
                hint: "Check the password given for this user (conninfo password=…, PGPASSWORD, or ~/.pgpass) and the server's pg_hba.conf.")
        }
        if lower.contains("authentication failed for user") {
            // peer, ident, cert…: the method is not a password one; libpq says which.
            return LifeboatError(
                .postgres, "PostgreSQL authentication failed for user '\(user)' at \(endpoint): \(reason)",
                hint: "Check the server's pg_hba.conf entry for this user and host, and the OS or certificate identity it expects.")
        }
        if lower.contains("no pg_hba.conf entry") {
            return LifeboatError(
                .postgres, "PostgreSQL at \(endpoint) does not accept connections from here for user '\(user)' and database '\(parameters.dbname)': \(reason)",
                hint: "Add a matching entry to the server's pg_hba.conf (and reload it), or connect from an allowed host or with sslmode=require if only SSL connections are allowed.")
        }
        if lower.contains("role \"") && lower.contains("does not exist") {
            return LifeboatError(
                .postgres, "PostgreSQL role '\(user)' does not exist at \(endpoint)",
                hint: "Check the user name (conninfo user=… or PGUSER); without one, libpq uses the name of the OS user.")
        }
        if lower.contains("database \"") && lower.contains("does not exist") {
            return LifeboatError(
                .postgres, "PostgreSQL database '\(parameters.dbname)' does not exist at \(endpoint)",
                hint: "Check the database name (conninfo dbname=…); `psql -l` lists the databases of the server.")
        }
        let unreachable = [
            "connection refused", "could not connect", "timeout expired", "timed out",
            "could not translate host name", "no such file or directory", "network is unreachable",
            "no route to host", "name or service not known", "server closed the connection unexpectedly",
        ]
        if unreachable.contains(where: { lower.contains($0) }) {
            return LifeboatError(
                .postgres, "could not connect to PostgreSQL at \(endpoint): \(reason)",
                hint: "Check that the PostgreSQL server is running and accepts connections there, and that the host and port are right.")
        }
        return LifeboatError(.postgres, "could not connect to PostgreSQL at \(endpoint) as user '\(user)': \(whole)")
    }

    /// The reason in libpq's first line: what follows "connection to server at … failed: ",
    /// without the "FATAL:" severity.
    static func firstReason(_ message: String) -> String {
        reasonLines(message).first ?? "unknown libpq error"
    }

    /// All of libpq's message on one line, the first line reduced to its reason.
    private static func detail(_ message: String) -> String {
        let lines = reasonLines(message)
        return lines.isEmpty ? "unknown libpq error" : lines.joined(separator: " ")
    }

    private static func reasonLines(_ message: String) -> [String] {
        var lines = message.split(separator: "\n").map { String($0).trimmedOfWhitespace() }.filter { !$0.isEmpty }
        guard var line = lines.first else { return [] }
        if line.hasPrefix("connection to server"), let range = line.firstRange(of: " failed: ") {
            line = String(line[range.upperBound...])
        }
        for severity in ["FATAL:", "ERROR:"] where line.hasPrefix(severity) {
            line = String(line.dropFirst(severity.count)).trimmedOfWhitespace()
        }
        lines[0] = line
        return lines.filter { !$0.isEmpty }
    }

    /// libpq does not put the password in its messages; make sure of it anyway.
    static func redacted(_ text: String, _ parameters: PostgresConnectionParameters) -> String {
        guard let password = parameters.password, !password.isEmpty else { return text }
        return text.replacingAll(password, with: "********")
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        result += rest
        return result
    }
}

/// Calls `body` with a NULL-terminated array of C strings that live for the call.
func withCStringPointers<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    withOptionalCStringPointers(strings.map { Optional($0) }, body)
}

/// Calls `body` with an array of C strings (NULL for nil), NULL-terminated, that live for
/// the call.
func withOptionalCStringPointers<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.flatMap { strdup($0) } }
    defer { for copy in copies { free(copy) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatRedis

/// `source: { redis: { host, port, user, password, tls, mode, save_timeout } }`: a snapshot
/// of a Redis server, its RDB file, checked (magic, version, CRC-64) and stored as one
/// artifact; restored as that file into a directory, for the server to be started on.
///
/// `mode: local` saves with `BGSAVE` and reads the file the server wrote (`CONFIG GET dir`,
/// `dbfilename`) on this machine; `mode: replication` takes it over the network as a replica
/// would (`SYNC`, as `redis-cli --rdb`); `mode: auto` (the default) is local when the
/// server's directory is on this machine, else replication (`RedisBackup`).
public struct RedisKind: SourceKind {
    public init() {}

    public var name: String { "redis" }

    public var parser: SourceKindParser {
        SourceKindParser(kind: name) { node in
            guard let map = node.mapping(allowed: ["host", "port", "user", "password", "tls", "mode", "save_timeout"]) else { return nil }
            var valid = true
            var host = RedisConfiguration.defaultHost
            if let hostNode = map["host"] {
                if let text = hostNode.string() {
                    if RedisConfiguration.isValidHost(text) {
                        host = text
                    } else {
                        hostNode.error("'\(text)' is not a host name or IP address for 'source.redis.host'",
                                       hint: "Write a name (redis.internal) or an address (10.0.0.5, ::1), without a scheme or a port.")
                        valid = false
                    }
                } else {
                    valid = false
                }
            }
            var port = RedisConfiguration.defaultPort
            if let portNode = map["port"] {
                if let value = portNode.int(in: 1...65535) { port = value } else { valid = false }
            }
            let user = map["user"]?.string()
            let password = map["password"]?.string()
            if map["user"] != nil, user == nil { valid = false }
            if map["password"] != nil, password == nil { valid = false }
            if let userNode = map["user"], map["password"] == nil {
                userNode.error("'source.redis.user' needs 'password' (an ACL user logs in with both)",
                               hint: "Add 'password: \"${REDIS_PASSWORD}\"', or leave 'user' out for the default user.")
                valid = false
            }
            var tls: RedisTLS?
            if let tlsNode = map["tls"] {
                let parsed = Self.parseTLS(tlsNode)
                tls = parsed.tls
                valid = valid && parsed.ok
            }
            var mode = RedisConfiguration.Mode.auto
            if let modeNode = map["mode"] {
                if let text = modeNode.oneOf(RedisConfiguration.Mode.allCases.map(\.rawValue)),
                   let parsed = RedisConfiguration.Mode(rawValue: text) {
                    mode = parsed
                } else {
                    valid = false
                }
            }
            var saveTimeout = RedisConfiguration.defaultSaveTimeout
            if let timeoutNode = map["save_timeout"] {
                if let duration = timeoutNode.positiveDuration() { saveTimeout = TimeInterval(duration.seconds) } else { valid = false }
            }
            guard valid else { return nil }
            return RedisConfiguration(host: host, port: port, user: user, password: password, tls: tls, mode: mode,
                                      saveTimeout: saveTimeout)
        }
    }

    /// `tls: true|false` or `tls: { ca_bundle, cert, key, verify }`: `ok` is false when the
    /// node is invalid (the errors are recorded); `tls` is nil for `tls: false`.
    static func parseTLS(_ node: ConfigNode) -> (ok: Bool, tls: RedisTLS?) {
        guard node.isMapping else {
            guard let enabled = node.bool() else { return (false, nil) }
            return (true, enabled ? RedisTLS() : nil)
        }
        guard let map = node.mapping(allowed: ["ca_bundle", "cert", "key", "verify"]) else { return (false, nil) }
        let caBundle = map["ca_bundle"]?.absolutePath()
        let certificate = map["cert"]?.absolutePath()
        let key = map["key"]?.absolutePath()
        let verify = map["verify"]?.bool()
        guard map["ca_bundle"] == nil || caBundle != nil, map["cert"] == nil || certificate != nil,
              map["key"] == nil || key != nil, map["verify"] == nil || verify != nil
        else { return (false, nil) }
        if (certificate == nil) != (key == nil) {
            (map["cert"] ?? map["key"] ?? node).error("'source.redis.tls' needs both 'cert' and 'key' for a client certificate, or neither")
            return (false, nil)
        }
        return (true, RedisTLS(caBundle: caBundle, certificate: certificate, key: key, verify: verify ?? true))
    }

    public func backup(_ configuration: any SourceConfiguration, into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome {
        try RedisBackup(configuration: try RedisConfiguration.of(configuration)).run(into: sink, context: context)
    }

    public func restoreLocation(commandLine text: String, workingDirectory: String, manifest: Manifest) throws -> RestoreTarget.Location {
        guard !text.isEmpty else { throw LifeboatError(.usage, "--to needs a directory to write the RDB file into") }
        return .directory(text.hasPrefix("/") ? text : URL(fileURLWithPath: workingDirectory).appendingPathComponent(text).standardizedFileURL.path)
    }

    public func restore(_ manifest: Manifest, from repository: Repository, to target: RestoreTarget,
                        configuration: (any SourceConfiguration)?, context: RunContext) throws -> RestoreReport {
        try RedisRestore(manifest: manifest, repository: repository, context: context).run(to: target)
    }

    public func leftovers(of target: RestoreTarget) -> String {
        "Nothing was left in \(target.location): the RDB file is written under a temporary name, given its own only once it was checked, and removed when the restore fails; run it again."
    }
}

/// A `redis` source's configuration.
public struct RedisConfiguration: SourceConfiguration, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Local when the server's directory is on this machine, else replication.
        case auto
        /// `BGSAVE`, then the file the server wrote, read here.
        case local
        /// `SYNC`: the RDB over the network, as a replica gets it.
        case replication
    }

    public static let defaultHost = "127.0.0.1"
    public static let defaultPort = 6379
    public static let defaultSaveTimeout: TimeInterval = 3600

    public var host: String
    public var port: Int
    /// An ACL user (Redis 6 and newer); nil for the default user.
    public var user: String?
    /// Never printed (registered with `Secrets`).
    public var password: String?
    /// nil: plain TCP.
    public var tls: RedisTLS?
    public var mode: Mode
    /// How long the server may take to save (`BGSAVE`, or preparing the file for `SYNC`).
    public var saveTimeout: TimeInterval

    public init(host: String = Self.defaultHost, port: Int = Self.defaultPort, user: String? = nil, password: String? = nil,
                tls: RedisTLS? = nil, mode: Mode = .auto, saveTimeout: TimeInterval = Self.defaultSaveTimeout) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.tls = tls
        self.mode = mode
        self.saveTimeout = saveTimeout
    }

    public var kind: String { "redis" }
    public var secrets: [String] { password.map { [$0] } ?? [] }
    public var restoreTargetKeys: [String] { ["path"] }

    public var endpoint: RedisEndpoint { RedisEndpoint(host: host, port: port, tls: tls) }

    /// A host name or an IP address (v4, or v6 without brackets): nothing that would change
    /// the meaning of the URL libcurl connects to.
    static func isValidHost(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 253 && text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-" || $0 == ":" || $0 == "_"
        }
    }
}

/// What a Redis backup records in its manifest (`source.redis`): where the RDB came from and
/// what it is, without any secret.
public struct RedisRecord: Codable, Equatable, Sendable {
    public var host: String
    public var port: Int
    public var user: String?
    public var tls: Bool
    /// How the RDB was taken: `local` (the server's file, after BGSAVE) or `replication` (SYNC).
    public var mode: String
    /// `file`, or for replication the master's form: `length` (`$<length>`) or `diskless` (`$EOF:<mark>`).
    public var transfer: String
    public var serverVersion: String
    /// The RDB format version (10 for Redis 7.0).
    public var rdbVersion: Int
    public var rdbSize: Int64
    /// The file's name on the server (`dbfilename`, else dump.rdb): the restored file's name,
    /// and the name of the stream in the artifact.
    public var rdbFile: String
    /// Local mode: the file that was read.
    public var serverPath: String?
    /// The RDB's CRC-64 (16 hex digits), checked; nil when the server saves without one
    /// (`rdbchecksum no`).
    public var checksum: String?
    /// Whether the server had `appendonly yes`: it then loads its AOF, not an RDB, at start.
    public var aofEnabled: Bool?

    public init(host: String, port: Int, user: String?, tls: Bool, mode: String, transfer: String, serverVersion: String,
                rdbVersion: Int, rdbSize: Int64, rdbFile: String, serverPath: String?, checksum: String?, aofEnabled: Bool?) {
        self.host = host
        self.port = port
        self.user = user
        self.tls = tls
        self.mode = mode
        self.transfer = transfer
        self.serverVersion = serverVersion
        self.rdbVersion = rdbVersion
        self.rdbSize = rdbSize
        self.rdbFile = rdbFile
        self.serverPath = serverPath
        self.checksum = checksum
        self.aofEnabled = aofEnabled
    }
}

extension ArtifactRole {
    /// A Redis backup's one artifact: the RDB file, as the stream named after it.
    public static let redisRDB = ArtifactRole("redis-rdb")
}

import Testing
@testable import LifeboatCore
@testable import LifeboatEngine
import LifeboatRedis

@Suite struct RedisConfigurationParsing {
    @Test func readsEveryKey() throws {
        let configuration = try parse(policies: ["cache.yaml": """
            policy: cache
            source:
              redis:
                host: redis.internal
                port: 6380
                user: backup
                password: "${REDIS_PASSWORD}"
                tls: { ca_bundle: /etc/ssl/redis-ca.pem, cert: certs/client.pem, key: certs/client.key }
                mode: replication
                save_timeout: 10m
            """], environment: ["REDIS_PASSWORD": "s3cret-redis"]).get()
        let source = try #require(configuration.policies.first?.source as? RedisConfiguration)
        #expect(source == RedisConfiguration(
            host: "redis.internal", port: 6380, user: "backup", password: "s3cret-redis",
            tls: RedisTLS(caBundle: "/etc/ssl/redis-ca.pem", certificate: "/etc/lifeboat/certs/client.pem",
                          key: "/etc/lifeboat/certs/client.key", verify: true),
            mode: .replication, saveTimeout: 600))
        #expect(source.secrets == ["s3cret-redis"])
        #expect(source.restoreTargetKeys == ["path"])
        #expect(source.endpoint.description == "redis.internal:6380")
    }

    @Test func everyKeyHasADefault() throws {
        let configuration = try parse(policies: ["cache.yaml": "policy: cache\nsource: { redis: {} }\n"]).get()
        let source = try #require(configuration.policies.first?.source as? RedisConfiguration)
        #expect(source == RedisConfiguration(host: "127.0.0.1", port: 6379, mode: .auto, saveTimeout: 3600))
        #expect(source.tls == nil && source.secrets.isEmpty)
        let tls = try parse(policies: ["cache.yaml": "policy: cache\nsource: { redis: { host: '::1', tls: true } }\n"]).get()
        let withTLS = try #require(tls.policies.first?.source as? RedisConfiguration)
        #expect(withTLS.tls == RedisTLS() && withTLS.endpoint.description == "[::1]:6379")
    }

    @Test(arguments: [
        ("    port: 70000", "policies/r.yaml:4:11: 'source.redis.port' must be between 1 and 65535, not 70000"),
        ("    mode: mirror", "policies/r.yaml:4:11: 'mirror' is not a valid value for 'source.redis.mode' (expected 'auto' or 'local' or 'replication')"),
        ("    user: backup", "policies/r.yaml:4:11: 'source.redis.user' needs 'password' (an ACL user logs in with both)"),
        ("    tls: { cert: a.pem }", "policies/r.yaml:4:18: 'source.redis.tls' needs both 'cert' and 'key' for a client certificate, or neither"),
        ("    tls: maybe", "policies/r.yaml:4:10: 'source.redis.tls' must be true or false, not 'maybe'"),
        ("    tls: { verify: no, ca: x }", "policies/r.yaml:4:24: unknown key 'ca' in 'source.redis.tls' (expected one of: ca_bundle, cert, key, verify)"),
        ("    host: \"redis://x\"", "policies/r.yaml:4:11: 'redis://x' is not a host name or IP address for 'source.redis.host'"),
        ("    passwd: x", "policies/r.yaml:4:5: unknown key 'passwd' in 'source.redis' (did you mean 'password'?)"),
        ("    password: \"${UNSET}\"", "policies/r.yaml:4:15: environment variable 'UNSET' used in 'source.redis.password' is not set"),
        ("    save_timeout: 0s", "policies/r.yaml:4:19: 'source.redis.save_timeout' must be longer than 0s"),
    ])
    func mistakesAreReportedWhereTheyAre(line: String, expected: String) {
        #expect(errors(parse(policies: ["r.yaml": "policy: r\nsource:\n  redis:\n\(line)\n"])) == [expected])
    }

    @Test func everyMistakeOfOnePolicyIsReported() {
        let found = errors(parse(policies: ["r.yaml": "policy: r\nsource:\n  redis:\n    port: x\n    mode: y\n    tls: z\n"]))
        #expect(found.count == 3, "\(found)")
    }

    @Test func autoModeReadsTheFileOnlyForAServerOnThisMachine() {
        for host in ["127.0.0.1", "127.0.1.1", "localhost", "::1"] { #expect(RedisBackup.isThisMachine(host), "\(host)") }
        // Documentation addresses (RFC 5737, RFC 3849) belong to no machine.
        for host in ["192.0.2.1", "2001:db8::1", "name.invalid"] { #expect(!RedisBackup.isThisMachine(host), "\(host)") }
    }
}

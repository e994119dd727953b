import Foundation
import Testing
@testable import LifeboatCore
@testable import LifeboatEngine

/// The platform's own configuration at the top of this repository (`lifeboat.yaml`,
/// `policies/`, `runbooks/`): it stays valid — what `lifeboat check` requires — given the
/// variables a site sets (README, "The platform's configuration"), and holds what the issue asks.
@Suite struct PlatformConfiguration {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// What a site sets; everything else has a default.
    static let site: [String: String] = [
        "HUB_PG_CONNINFO": "host=db.internal port=5432 user=backup dbname=postgres",
        "MINIO_ENDPOINT": "http://minio.internal:9000",
        "MINIO_ACCESS_KEY": "backup-key",
        "MINIO_SECRET_KEY": "backup-secret",
        "REDIS_HOST": "redis.internal",
        "REDIS_PORT": "6380",
        "RECOVERY_PG_DATA": "/srv/postgresql/15/main",
        "RECOVERY_PG_CONNINFO": "host=db.internal user=postgres dbname=mcphub",
        "RECOVERY_HUB_URL": "http://hub.internal:8080",
        "RECOVERY_REGISTRY_URL": "http://registry.internal:8081",
        "RECOVERY_MINIO_URL": "http://minio.internal:9000",
        "RECOVERY_REDIS_HOST": "redis.internal",
        "RECOVERY_REDIS_PORT": "6380",
        "RECOVERY_STOP_POSTGRES": "systemctl stop postgresql@15-main",
        "RECOVERY_START_POSTGRES": "systemctl start postgresql@15-main",
        "RECOVERY_RESTART_SERVICES": "systemctl restart hub-web registry scan-worker",
    ]

    func load(_ environment: [String: String]) throws -> Configuration {
        try ConfigurationLoader.load(directory: Self.root, environment: environment)
    }

    @Test func isValidGivenASitesVariables() throws {
        let configuration = try load(Self.site)
        #expect(configuration.problems.map { "\($0.error)" } == [])
        #expect(configuration.policies.map(\.name) == ["hub-postgres", "lifeboat-config", "minio-buckets", "redis-cache"])
        #expect(configuration.runbooks.map(\.name) == ["platform-recovery"])
    }

    @Test func withoutVariablesOnlyTheMinIOKeyIsMissing() throws {
        let configuration = try load([:])
        let problems = configuration.problems.map { $0.error.message }
        #expect(problems.prefix(2) == [
            "policies/minio-buckets.yaml:13:20: environment variable 'MINIO_ACCESS_KEY' used in 'source.s3.access_key_id' is not set",
            "policies/minio-buckets.yaml:14:24: environment variable 'MINIO_SECRET_KEY' used in 'source.s3.secret_access_key' is not set",
        ])
        // The drill's bucket checks use the same keys: each of the three says so at its line.
        #expect(problems.count == 8)
        #expect(problems.dropFirst(2).allSatisfy {
            $0.hasPrefix("runbooks/platform-recovery.yaml:") && $0.contains("MINIO_") && $0.contains("'steps.4.health.")
        })
        #expect(configuration.problems.allSatisfy { $0.scope == .policy("minio-buckets") || $0.scope == .runbook("platform-recovery") })
    }

    @Test func backsUpPostgresAndTheBucketsEveryNightAndRedisOnlyByHand() throws {
        let configuration = try load(Self.site)
        let policies = Dictionary(uniqueKeysWithValues: configuration.policies.map { ($0.name, $0) })
        let postgres = try #require(policies["hub-postgres"])
        #expect(postgres.source.kind == "postgres")
        #expect(postgres.schedule != nil)
        #expect(postgres.retention.recoveryWindow == ConfigDuration(seconds: 30 * 86_400))

        let buckets = try #require(policies["minio-buckets"]?.source as? S3MirrorConfiguration)
        #expect(buckets.connection.endpoint == "http://minio.internal:9000")
        #expect(buckets.buckets.map(\.bucket) == ["mcp-hub-sources", "mcp-hub-analysis", "mcp-registry"])
        #expect(policies["minio-buckets"]?.schedule != nil)
        #expect(policies["minio-buckets"]?.retention.keepWithin == ConfigDuration(seconds: 90 * 86_400))

        // Switched off: present, runnable by hand, never scheduled.
        let redis = try #require(policies["redis-cache"])
        #expect(redis.schedule == nil)
        let source = try #require(redis.source as? RedisConfiguration)
        #expect(source.host == "redis.internal" && source.port == 6380)
    }

    @Test func theRecoveryRunbookTakesTheDRPlansOrderAndIsDrilledNightly() throws {
        let configuration = try load(Self.site)
        let runbook = try #require(configuration.runbooks.first)
        #expect(runbook.schedule != nil)
        #expect(runbook.objectives?.rto != nil && runbook.objectives?.rpo != nil)
        #expect(runbook.steps.map(\.id) == ["stop-postgres", "restore-hub-postgres", "start-postgres", "parallel-1", "drill-checks",
                                            "database-up", "restart-services", "verify", "resubmit-jobs"])
        #expect(runbook.restoreSteps.map(\.policy) == ["hub-postgres", "minio-buckets", "minio-buckets", "minio-buckets"])
        #expect(runbook.restoreSteps.map(\.target.target.location) == [
            .dataDirectory("/srv/postgresql/15/main"),
            .s3(bucket: "mcp-hub-sources", prefix: ""), .s3(bucket: "mcp-hub-analysis", prefix: ""), .s3(bucket: "mcp-registry", prefix: ""),
        ])
        // What touches the live platform runs only in recover; a drill restores into scratch targets.
        let recoverOnly = runbook.allSteps.filter { !$0.runs(in: .drill) }.map(\.id)
        #expect(recoverOnly == ["stop-postgres", "start-postgres", "database-up", "restart-services", "verify", "resubmit-jobs"])
        // Re-submitting the in-flight jobs is the operator's: skipped (and reported) under --yes.
        let manual = try #require(runbook.step(id: "resubmit-jobs"))
        #expect(manual.kindName == "manual" && !manual.critical)
        guard case .health(let verify) = try #require(runbook.step(id: "verify")).kind else {
            Issue.record("verify is not a health step")
            return
        }
        #expect(verify.checks.count == 5)
        // A drill checks its scratch copies: the scratch PostgreSQL and the three bucket prefixes.
        let drillChecks = try #require(runbook.step(id: "drill-checks"))
        #expect(drillChecks.runs(in: .drill) && !drillChecks.runs(in: .recover))
        guard case .health(let scratch) = drillChecks.kind else {
            Issue.record("drill-checks is not a health step")
            return
        }
        #expect(scratch.checks.count == 4)
    }
}

import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Synchronization
import Testing
import TestSupport

/// A clock that moves only when the code under test sleeps.
final class VirtualClock: Sendable {
    private let now = Mutex(Date(timeIntervalSince1970: 1_764_400_000))
    let sleeps = Mutex<[Double]>([])

    var date: Date { now.withLock { $0 } }

    func context(cancellation: Cancellation = Cancellation(), onSleep: @escaping @Sendable (Int) -> Void = { _ in }) -> RunContext {
        RunContext(logger: quietLogger, clock: { [self] in date }, cancellation: cancellation, sleep: { [self] seconds in
            let count = sleeps.withLock { $0.append(seconds); return $0.count }
            now.withLock { $0 = $0.addingTimeInterval(seconds) }
            onSleep(count)
        })
    }
}

func runbookVariables(_ environment: [String: String] = [:]) -> RunbookVariables {
    RunbookVariables(runbook: Runbook(name: "test", file: "runbooks/test.yaml", steps: []), mode: .drill,
                     environment: environment, recoveryTargetTime: nil)
}

func runner(_ context: RunContext = RunContext(logger: quietLogger), environment: [String: String] = [:]) -> HealthCheckRunner {
    HealthCheckRunner(context: context, variables: runbookVariables(environment))
}

func literal(_ text: String) -> RunbookTemplate { RunbookTemplate(literal: text) }

func argv(_ words: String...) -> CommandSpec {
    CommandSpec(program: .argv(words.map(literal)), baseDirectory: "/")
}

func shell(_ script: String, environment: [String: String] = [:], cwd: String? = nil) -> CommandSpec {
    CommandSpec(program: .shell(literal(script)), environment: environment.mapValues(literal), workingDirectory: cwd.map(literal),
                baseDirectory: "/")
}

func httpCheck(_ url: String, statuses: [Int] = [200], json: [(String, String)] = [], acceptDegraded: Bool = false) -> HealthCheck {
    HealthCheck(kind: .http(HTTPHealthCheck(url: literal(url), statuses: statuses, json: json.map { (path: $0.0, expected: literal($0.1)) },
                                            acceptDegraded: acceptDegraded)),
                timeout: ConfigDuration(seconds: 5))
}

/// Whether a process exists (a zombie counts until it is reaped).
func processExists(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

@Suite(.timeLimit(.minutes(10)))
struct HealthChecksAgainstRealServers {
    @Test func httpChecksReadThePlatformsHealthFormatAndNameTheFailingDependency() async throws {
        try await offThePool {
            let server = try HealthTestServer.start()
            defer { server.stop() }
            try server.set("/health", status: 200, body: ["status": "healthy", "checks": ["database": "ok", "redis": "ok"]])
            try server.set("/degraded", status: 503, body: ["status": "degraded", "checks": ["database": "ok", "redis": "down"]])
            try server.set("/unhealthy", status: 503,
                           body: ["status": "unhealthy", "checks": ["database": ["status": "error", "error": "connection refused"], "redis": "ok"]])
            try server.set("/healthz", status: 200, body: "ok")
            let r = runner()

            #expect(r.check(httpCheck(server.url("/health"), json: [("status", "healthy")])) == .passed("HTTP 200, status 'healthy'"))
            #expect(r.check(httpCheck(server.url("/degraded"))) == .failed("HTTP 503, status 'degraded'; not ok: redis (down)"))
            #expect(r.check(httpCheck(server.url("/degraded"), acceptDegraded: true))
                == .passed("HTTP 503, status 'degraded'; not ok: redis (down)"))
            #expect(r.check(httpCheck(server.url("/unhealthy"), acceptDegraded: true))
                == .failed("HTTP 503, status 'unhealthy'; not ok: database (error: connection refused)"))
            #expect(r.check(httpCheck(server.url("/healthz"))) == .passed("HTTP 200"))
            #expect(r.check(httpCheck(server.url("/missing"))) == .failed("HTTP 404 (expected 200): not found"))

            let closed = try freeLoopbackPort()
            let refused = r.check(httpCheck("http://127.0.0.1:\(closed)/health"))
            #expect(!refused.passed)
            #expect(refused.detail.hasPrefix("GET http://127.0.0.1:\(closed)/health: connect-failed"))
        }
    }

    @Test func postgresChecksRunTheQueryAndCompareItsValue() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let conninfo = server.conninfo(password: server.superuserPassword)
            func check(_ query: String, expect: String? = nil, conninfo: String = conninfo) -> CheckOutcome {
                runner().check(HealthCheck(kind: .postgres(PostgresHealthCheck(conninfo: literal(conninfo), query: literal(query),
                                                                               expect: expect.map(literal)))))
            }
            #expect(check("select 40 + 2", expect: "42") == .passed("postgres@127.0.0.1:\(server.port)/postgres: the query returned '42'"))
            #expect(check("select 40 + 2", expect: "43")
                == .failed("postgres@127.0.0.1:\(server.port)/postgres: the query returned '42', expected '43'"))
            #expect(check("select 1 where false", expect: "1")
                == .failed("postgres@127.0.0.1:\(server.port)/postgres: the query returned no rows, expected '1'"))
            let missingTable = check("select count(*) from jobs")
            #expect(!missingTable.passed && missingTable.detail.contains("relation \"jobs\" does not exist"))
            let wrongPassword = check("select 1", conninfo: server.conninfo(password: "wrong-password-9"))
            #expect(!wrongPassword.passed && wrongPassword.detail == "PostgreSQL authentication failed for user 'postgres' at 127.0.0.1:\(server.port)")
            #expect(!wrongPassword.detail.contains("wrong-password-9"))
        }
    }

    @Test func redisChecksSendPingAndExpectPong() async throws {
        try await offThePool {
            let server = try RedisServer.start(password: "redis-pw-42")
            defer { server.stop() }
            func check(password: String?, port: Int = server.port) -> CheckOutcome {
                runner().check(HealthCheck(kind: .redis(RedisHealthCheck(host: literal("127.0.0.1"), port: port, password: password.map(literal))),
                                           timeout: ConfigDuration(seconds: 5)))
            }
            #expect(check(password: "redis-pw-42") == .passed("127.0.0.1:\(server.port): PING answered PONG"))
            let noPassword = check(password: nil)
            #expect(!noPassword.passed && noPassword.detail.contains("NOAUTH"))
            let closed = check(password: nil, port: try freeLoopbackPort())
            #expect(!closed.passed && closed.detail.contains("unable to connect to Redis at 127.0.0.1"))
        }
    }

    @Test func redisChecksSpeakTLSWithAClientCertificate() async throws {
        try await offThePool {
            let scratch = try TemporaryDirectory("lifeboat-redis-tls")
            defer { scratch.remove() }
            let certificates = try TestCertificates.make(in: scratch.path)
            let server = try RedisServer.start(tls: certificates)
            defer { server.stop() }
            func check(_ tls: RedisHealthCheck.TLS?) -> CheckOutcome {
                runner().check(HealthCheck(kind: .redis(RedisHealthCheck(host: literal("127.0.0.1"), port: server.port, tls: tls)),
                                           timeout: ConfigDuration(seconds: 5)))
            }
            #expect(check(RedisHealthCheck.TLS(caBundle: certificates.caCertificate, certificate: certificates.clientCertificate,
                                               key: certificates.clientKey))
                == .passed("127.0.0.1:\(server.port): PING answered PONG"))
            #expect(!check(RedisHealthCheck.TLS(caBundle: certificates.caCertificate)).passed)
            #expect(!check(nil).passed)
        }
    }

    @Test func s3ChecksReachTheBucketAndCountItsObjects() async throws {
        try await offThePool {
            let s3 = try S3TestServer.start(buckets: ["hub-sources"])
            defer { s3.stop() }
            let client = try S3Client(
                configuration: S3Client.Configuration(endpoint: s3.endpoint, region: s3.region, bucket: "hub-sources", pathStyle: true,
                                                      credentials: AWSCredentials(accessKeyID: s3.accessKeyID, secretAccessKey: s3.secretAccessKey),
                                                      retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.01)),
                http: try HTTPClient(), logger: quietLogger)
            for key in ["restored/a", "restored/b", "other/c"] { _ = try client.putObject(key: key, bytes: Array(key.utf8)) }
            func check(bucket: String = "hub-sources", prefix: String, minObjects: Int?) -> CheckOutcome {
                let connection = S3RepositoryConfig(endpoint: s3.endpoint, region: s3.region, bucket: bucket,
                                                    prefix: S3RepositoryConfig.normalizedPrefix(prefix), accessKeyID: s3.accessKeyID,
                                                    secretAccessKey: s3.secretAccessKey, sessionToken: nil, profile: nil, pathStyle: true,
                                                    caBundle: nil)
                return runner().check(HealthCheck(kind: .s3(S3HealthCheck(connection: connection, minObjects: minObjects))))
            }
            #expect(check(prefix: "restored", minObjects: 2) == .passed("s3://hub-sources/restored/ answers: 2 objects"))
            #expect(check(prefix: "", minObjects: nil) == .passed("s3://hub-sources/ answers: at least 1 object"))
            #expect(check(prefix: "restored", minObjects: 3) == .failed("s3://hub-sources/restored/: 2 objects, expected at least 3"))
            let missing = check(bucket: "no-such-bucket", prefix: "", minObjects: nil)
            #expect(!missing.passed && missing.detail.contains("NoSuchBucket"))
        }
    }

    @Test func tcpChecksConnectOrSayWhyNot() async throws {
        try await offThePool {
            let server = try HealthTestServer.start()
            defer { server.stop() }
            let closed = try freeLoopbackPort()
            func check(_ address: String) -> CheckOutcome {
                runner().check(HealthCheck(kind: .tcp(literal(address)), timeout: ConfigDuration(seconds: 3)))
            }
            #expect(check("127.0.0.1:\(server.port)") == .passed("connected to 127.0.0.1:\(server.port)"))
            #expect(check("127.0.0.1:\(closed)") == .failed("cannot connect to 127.0.0.1:\(closed): Connection refused"))
            let unresolvable = check("no-such-host.invalid:80")
            #expect(!unresolvable.passed && unresolvable.detail.hasPrefix("cannot resolve 'no-such-host.invalid'"))
        }
    }

    @Test func commandChecksPassOnExitStatusZero() async throws {
        try await offThePool {
            let r = runner(environment: ["PATH": "/usr/bin:/bin"])
            #expect(r.check(HealthCheck(kind: .command(argv("true")))) == .passed("exited with status 0"))
            #expect(r.check(HealthCheck(kind: .command(shell("echo checking; echo 'disk full' >&2; exit 3"))))
                == .failed("exited with status 3: disk full"))
            let missing = r.check(HealthCheck(kind: .command(argv("no-such-program-x"))))
            #expect(!missing.passed && missing.detail.hasPrefix("program 'no-such-program-x' not found in PATH"))
        }
    }
}

@Suite(.timeLimit(.minutes(10)))
struct HealthCheckRetryLoop {
    /// A command check that fails until it has run `passOn` times (a counter in a file).
    func countingCheck(_ directory: String, passOn: Int) -> HealthCheck {
        HealthCheck(kind: .command(shell("n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo \"try $n\"; [ $n -ge \(passOn) ]",
                                         cwd: directory)),
                    timeout: ConfigDuration(seconds: 10))
    }

    @Test func passesOnTheThirdTryEveryInterval() async throws {
        try await offThePool {
            let scratch = try TemporaryDirectory("lifeboat-health")
            defer { scratch.remove() }
            let directory = scratch.path
            let clock = VirtualClock()
            let start = clock.date
            let step = HealthStep(checks: [countingCheck(directory, passOn: 3)], within: ConfigDuration(seconds: 60),
                                  interval: ConfigDuration(seconds: 5))
            let results = try runner(clock.context(), environment: ["PATH": "/usr/bin:/bin"]).waitUntilPassing(step)
            #expect(results.map(\.passed) == [true])
            #expect(results[0].attempts == 3)
            #expect(results[0].detail == "exited with status 0")
            #expect(results[0].passedAt == start.addingTimeInterval(10))
            #expect(clock.sleeps.withLock { $0 } == [5, 5])
        }
    }

    @Test func givesUpWhenWithinRunsOutAndSaysWhatItGot() async throws {
        try await offThePool {
            let scratch = try TemporaryDirectory("lifeboat-health")
            defer { scratch.remove() }
            let directory = scratch.path
            let clock = VirtualClock()
            let step = HealthStep(checks: [countingCheck(directory, passOn: 100), HealthCheck(kind: .command(argv("/bin/true")))],
                                  within: ConfigDuration(seconds: 12), interval: ConfigDuration(seconds: 5))
            let results = try runner(clock.context()).waitUntilPassing(step)
            #expect(results.map(\.passed) == [false, true])
            // Tries at 0, 5, 10 and at the end (12 s); the check that passed is not tried again.
            #expect(results.map(\.attempts) == [4, 1])
            #expect(results[0].detail == "exited with status 1: try 4")
            #expect(clock.sleeps.withLock { $0 } == [5, 5, 2])
        }
    }

    @Test func aCancellationEndsTheLoop() async throws {
        try await offThePool {
            let scratch = try TemporaryDirectory("lifeboat-health")
            defer { scratch.remove() }
            let directory = scratch.path
            let clock = VirtualClock()
            let cancellation = Cancellation()
            let context = clock.context(cancellation: cancellation) { count in
                if count == 2 { cancellation.cancel(reason: "SIGINT") }
            }
            let step = HealthStep(checks: [countingCheck(directory, passOn: 100)], within: ConfigDuration(seconds: 600),
                                  interval: ConfigDuration(seconds: 5))
            #expect {
                try runner(context).waitUntilPassing(step)
            } throws: { error in
                (error as? LifeboatError)?.code == .cancelled
            }
            #expect(clock.sleeps.withLock { $0 }.count == 2)
            #expect(try String(contentsOfFile: directory + "/count", encoding: .utf8) == "2\n")
        }
    }
}

@Suite(.timeLimit(.minutes(10)))
struct CommandSteps {
    let context = RunContext(logger: quietLogger)

    @Test func runsWithoutAShellWithItsEnvironmentAndDirectoryAndKeepsTheOutput() async throws {
        try await offThePool {
            let scratch = try TemporaryDirectory("lifeboat-run")
            defer { scratch.remove() }
            let directory = scratch.path
            let spec = CommandSpec(program: .argv([literal("sh"), literal("-c"), literal("echo \"$GREETING from $(pwd)\"; echo oops >&2"),
                                                   try RunbookTemplate(parsing: "${RUNBOOK_MODE}")]),
                                   environment: ["GREETING": try RunbookTemplate(parsing: "hello ${WHO}")],
                                   workingDirectory: literal("work"), baseDirectory: directory)
            try FileManager.default.createDirectory(atPath: directory + "/work", withIntermediateDirectories: true)
            let invocation = try CommandStep.invocation(spec, variables: runbookVariables(["WHO": "ops"]), environment: ["PATH": "/usr/bin:/bin"])
            #expect(invocation.executable == "/usr/bin/sh" || invocation.executable == "/bin/sh")
            #expect(invocation.arguments.last == "drill")
            #expect(invocation.workingDirectory == directory + "/work")
            let result = try CommandStep(context: context, stepID: "run-1").run(invocation, timeout: 10)
            #expect(result.outcome == .passed)
            #expect(result.output == "hello ops from \(directory)/work\noops\n")
            #expect(result.detail == "exited with status 0")
        }
    }

    @Test func aShellWordIsNotInterpretedWithoutShell() async throws {
        try await offThePool {
            let invocation = try CommandStep.invocation(argv("echo", "$(id)", ";", "false"), variables: runbookVariables(),
                                                        environment: ["PATH": "/usr/bin:/bin"])
            let result = try CommandStep(context: context, stepID: "run-1").run(invocation, timeout: 10)
            #expect(result.output == "$(id) ; false\n" && result.passed)
        }
    }

    @Test func aTimeoutStopsTheCommandAndEverythingItStarted() async throws {
        try await offThePool {
            let scratch = try TemporaryDirectory("lifeboat-run")
            defer { scratch.remove() }
            let directory = scratch.path
            // The child ignores SIGTERM (so SIGKILL after the grace is needed) and leaves a
            // grandchild that holds the output pipe.
            let script = "trap '' TERM; sleep 300 & echo $! > \(directory)/grandchild; echo started; wait"
            let invocation = try CommandStep.invocation(shell(script), variables: runbookVariables(), environment: ["PATH": "/usr/bin:/bin"])
            let started = Date()
            let result = try CommandStep(context: context, stepID: "run-1", grace: 0.5).run(invocation, timeout: 1)
            let elapsed = Date().timeIntervalSince(started)
            #expect(result.timedOut)
            #expect(result.outcome == .timedOut)
            #expect(result.termination == .signaled(SIGKILL))
            #expect(result.output == "started\n")
            #expect(result.detail.hasPrefix("timed out after"))
            #expect(elapsed >= 1 && elapsed < 10)
            let grandchild = try #require(pid_t(try String(contentsOfFile: directory + "/grandchild", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)))
            // Killed with its group; once init has reaped it, it is gone.
            var gone = false
            for _ in 0..<100 where !gone {
                gone = !processExists(grandchild)
                if !gone { usleep(20_000) }
            }
            #expect(gone)
        }
    }

    @Test func aFailingCommandReportsItsStatusAndLastLine() async throws {
        try await offThePool {
            let invocation = try CommandStep.invocation(shell("echo first; echo 'unit hub-web not found'; exit 5"), variables: runbookVariables(),
                                                        environment: [:])
            let result = try CommandStep(context: context, stepID: "run-1").run(invocation, timeout: nil)
            #expect(result.outcome == .failed)
            #expect(result.termination == .exited(5))
            #expect(result.detail == "exited with status 5: unit hub-web not found")
        }
    }

    @Test func theOutputKeptIsBounded() async throws {
        try await offThePool {
            let invocation = try CommandStep.invocation(shell("seq 1 100000"), variables: runbookVariables(), environment: ["PATH": "/usr/bin:/bin"])
            let result = try CommandStep(context: context, stepID: "run-1", outputLimit: 1000).run(invocation, timeout: 30)
            #expect(result.output.utf8.count == 1000)
            #expect(result.output.hasSuffix("99999\n100000\n"))
        }
    }

    @Test func aCancellationStopsTheCommand() async throws {
        try await offThePool {
            let cancellation = Cancellation()
            var context = self.context
            context.cancellation = cancellation
            let invocation = try CommandStep.invocation(shell("echo ready; sleep 300"), variables: runbookVariables(), environment: ["PATH": "/usr/bin:/bin"])
            let thread = Thread { usleep(300_000); cancellation.cancel(reason: "SIGTERM") }
            thread.start()
            let started = Date()
            #expect {
                try CommandStep(context: context, stepID: "run-1", grace: 0.5).run(invocation, timeout: nil)
            } throws: { error in
                (error as? LifeboatError)?.code == .cancelled
            }
            #expect(Date().timeIntervalSince(started) < 10)
        }
    }
}

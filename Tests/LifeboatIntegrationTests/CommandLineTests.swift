import Foundation
import Testing
import TestSupport

/// Bad input through the real executable: each gets exit status 2 and a message that says
/// where and what.
@Suite(.timeLimit(.minutes(10)))
struct CommandLineBadInput {
    func config(_ files: [String: String]) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        for (path, text) in files { try dir.write(path, text) }
        return dir
    }

    @Test func malformedYaml() async throws {
        try await offThePool {
            let dir = try config(["policies/bad.yaml": "policy: bad\nsource: { files: { path: /etc }\n"])
            defer { dir.remove() }
            let result = try LifeboatCLI.run(["check"], config: dir.path)
            #expect(result.status == 2)
            #expect(result.stderr.contains("error: policies/bad.yaml:3:1: malformed YAML"), "\(result.stderr)")
        }
    }

    @Test func unknownKey() async throws {
        try await offThePool {
            let dir = try config(["policies/p.yaml": "policy: p\nsource: { files: { path: /etc } }\nshedule: { cron: \"0 2 * * *\" }\n"])
            defer { dir.remove() }
            let result = try LifeboatCLI.run(["backup", "p"], config: dir.path)
            #expect(result.status == 2)
            #expect(result.stderr.contains("error: policies/p.yaml:3:1: unknown key 'shedule' (did you mean 'schedule'?)"))
        }
    }

    @Test func wrongType() async throws {
        try await offThePool {
            let dir = try config(["policies/p.yaml": "policy: p\nsource: { postgres: { mode: logical, conninfo: x, databases: mcphub } }\n"])
            defer { dir.remove() }
            let result = try LifeboatCLI.run(["check"], config: dir.path)
            #expect(result.status == 2)
            #expect(result.stderr.contains("policies/p.yaml:2:62: 'source.postgres.databases' must be a list, not a scalar"))
        }
    }

    @Test func checkReportsEveryErrorAsJSON() async throws {
        try await offThePool {
            let dir = try config([
                "lifeboat.yaml": "repositories: { local: { path: /x } }\nlisten: [1]\n",
                "policies/a.yaml": "policy: a\nsource: { files: { path: /a } }\nrepository: nowhere\n",
                "policies/b.yaml": "policy: b\nsource: { files: { path: /b } }\nretention: { keep_within: 3 days }\n",
            ])
            defer { dir.remove() }
            let result = try LifeboatCLI.run(["check", "--json"], config: dir.path)
            #expect(result.status == 2)
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            #expect(object?["ok"] as? Bool == false)
            let errors = object?["errors"] as? [String] ?? []
            #expect(errors.count == 3, "\(errors)")
            #expect(errors.contains { $0.hasPrefix("policies/a.yaml:3:13: unknown repository 'nowhere'") })
        }
    }

    @Test func checkReportsEveryRunbookProblemAndSummarisesValidRunbooks() async throws {
        try await offThePool {
            let policy = "policy: etc\nsource: { files: { path: /etc } }\n"
            let broken = try config([
                "policies/etc.yaml": policy,
                "runbooks/dr.yaml": """
                    runbook: dr
                    steps:
                      - restore: ect
                        target: { path: /restore, time: yesterday }
                      - { id: up, wait: 0s }
                      - { id: up, run: [echo, "${steps.restore-etc.restored_point}"] }
                    """,
            ])
            defer { broken.remove() }
            let failed = try LifeboatCLI.run(["check", "--offline"], config: broken.path)
            #expect(failed.status == 2)
            for message in ["error: runbooks/dr.yaml:3:14: runbook step restores unknown policy 'ect' (did you mean 'etc'?)",
                            "error: runbooks/dr.yaml:4:37: 'yesterday' is neither 'latest' nor a time",
                            "error: runbooks/dr.yaml:5:21: 'steps.1.wait' must be longer than 0s",
                            "error: runbooks/dr.yaml:6:11: step id 'up' is already used at line 5",
                            "error: runbooks/dr.yaml:6:27: '${steps.restore-etc.restored_point}' refers to step 'restore-etc', which this runbook does not have"] {
                #expect(failed.stderr.contains(message), "\(failed.stderr)")
            }

            let valid = try config([
                "policies/etc.yaml": policy,
                "runbooks/dr.yaml": """
                    runbook: dr
                    objectives: { rto: 15m }
                    steps:
                      - parallel:
                          - { restore: etc, target: { path: /restore } }
                          - { run: [true] }
                      - health: [ { tcp: "localhost:22" } ]
                    """,
            ])
            defer { valid.remove() }
            let passed = try LifeboatCLI.run(["check", "--offline"], config: valid.path)
            #expect(passed.status == 0, "\(passed.stderr)")
            #expect(passed.stdout.contains("runbook dr (runbooks/dr.yaml): 3 steps (1 restore, 1 run, 1 health), 1 parallel group; objectives: rto 15m"),
                    "\(passed.stdout)")
        }
    }

    @Test func missingPolicy() async throws {
        try await offThePool {
            let dir = try config(["policies/etc.yaml": "policy: etc\nsource: { files: { path: /etc } }\n"])
            defer { dir.remove() }
            let result = try LifeboatCLI.run(["backup", "ect"], config: dir.path)
            #expect(result.status == 2)
            #expect(result.stderr.contains("no policy named 'ect'"))
            #expect(result.stderr.contains("did you mean 'etc'"))
        }
    }

    @Test func unknownRepository() async throws {
        try await offThePool {
            let dir = try config([
                "lifeboat.yaml": "repositories: { offsite: { path: /srv/backups } }\n",
                "policies/etc.yaml": "policy: etc\nsource: { files: { path: /etc } }\nrepository: ofsite\n",
            ])
            defer { dir.remove() }
            let result = try LifeboatCLI.run(["backup", "etc"], config: dir.path)
            #expect(result.status == 2)
            #expect(result.stderr.contains("policies/etc.yaml:3:13: unknown repository 'ofsite' (did you mean 'offsite'?)"))
        }
    }

    @Test func missingConfigurationDirectory() async throws {
        try await offThePool {
            let result = try LifeboatCLI.run(["list"], config: "/nonexistent/lifeboat")
            #expect(result.status == 2)
            #expect(result.stderr.contains("configuration directory '/nonexistent/lifeboat' does not exist"))
        }
    }

    @Test func badArgumentsExitWithStatus2() async throws {
        try await offThePool {
            let dir = try config(["policies/etc.yaml": "policy: etc\nsource: { files: { path: /etc } }\n"])
            defer { dir.remove() }
            #expect(try LifeboatCLI.run(["restore", "etc"], config: dir.path).status == 2)  // --to is required
            #expect(try LifeboatCLI.run(["frobnicate"]).status == 2)
            let help = try LifeboatCLI.run(["--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("Exit status: 0 done; 1 the operation failed"))
            #expect(help.stdout.contains("2 bad input"))
            #expect(help.stdout.contains("130 / 143 cancelled by SIGINT / SIGTERM"))
        }
    }
}

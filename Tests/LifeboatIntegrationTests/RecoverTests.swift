import Foundation
import Glibc
import Synchronization
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// A configuration directory with a `files` policy backed up once into the built-in local
/// repository, and a runbook written by each test.
struct RecoverFixture {
    let dir: TemporaryDirectory

    init() throws {
        dir = try TemporaryDirectory("lifeboat-recover")
        _ = try dir.write("src/a.txt", "alpha\n")
        _ = try dir.write("src/sub/b.txt", "beta\n")
        _ = try dir.write("policies/app.yaml", "policy: app\nsource: { files: { path: src } }\n")
        let backup = try LifeboatCLI.run(["backup", "app"], config: dir.path)
        guard backup.status == 0 else { throw TestSupportError("backup failed: \(backup.all)") }
    }

    func runbook(_ steps: String, name: String = "dr") throws {
        _ = try dir.write("runbooks/\(name).yaml", "runbook: \(name)\nsteps:\n" + steps)
    }

    /// A step `id` that appends its id to `ran.txt`.
    static func echo(_ id: String) -> String { "  - id: \(id)\n    run: { shell: \"echo \(id) >> ran.txt\" }\n" }

    /// What the `echo` steps appended, in order.
    var ran: [String] { lines(dir.subpath("ran.txt")) }

    func recover(_ arguments: [String]) throws -> LifeboatCLI.Output {
        try LifeboatCLI.run(["recover"] + arguments, config: dir.path)
    }

    var state: String { dir.subpath(".lifeboat/state") }
    var journal: String { state + "/recover/dr.journal.jsonl" }

    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Starts `recover dr --yes` and waits until the command of step 'two' has written its pid
    /// to `two.pid`: the moment to signal the recovery.
    func startRecoverUntilStepTwoRuns() throws -> (LifeboatCLI.Running, Int32) {
        let running = try LifeboatCLI.start(["recover", "dr", "--yes"], config: dir.path)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, lines(dir.subpath("two.pid")).isEmpty { usleep(50_000) }
        guard let pid = Int32(lines(dir.subpath("two.pid")).first ?? "") else {
            kill(running.pid, SIGKILL)
            throw TestSupportError("step 'two' did not start within 60 s")
        }
        return (running, pid)
    }

    func entries(_ path: String) -> [JournalEntry] {
        lines(path).compactMap { try? RecoveryJournal.decoder.decode(JournalEntry.self, from: Data($0.utf8)) }
    }

    /// Archived (finished) journals.
    var archivedJournals: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state + "/recover")) ?? [])
            .filter { $0.hasPrefix("dr.") && $0 != "dr.journal.jsonl" }.map { state + "/recover/" + $0 }
    }

    func mode(_ path: String) -> mode_t {
        var info = stat()
        stat(path, &info)
        return info.st_mode & 0o777
    }
}

@Suite(.timeLimit(.minutes(10)))
struct RecoverRunbooks {
    @Test func aRecoveryRestoresRunsChecksHealthAndSkipsAnOptionalManualStepUnderYes() async throws {
        try await offThePool {
            let f = try RecoverFixture()
            defer { f.dir.remove() }
            let server = try HealthTestServer.start()
            defer { server.stop() }
            try server.set("/health", status: 200, body: ["status": "healthy", "checks": ["database": "ok"]])
            let postgres = try PostgresServer.start()
            defer { postgres.stop() }
            let out = f.dir.subpath("restored")
            try f.runbook("""
                  - restore: app
                    target: { path: restored }
                  - id: mark
                    run: { shell: "echo \\"$RESTORED_POINT\\" >> marks.txt && cat restored/a.txt >> marks.txt", env: { RESTORED_POINT: "${steps.restore-app.restored_point}" } }
                  - id: web
                    health:
                      - http: { url: "\(server.url("/health"))", json: { status: healthy } }
                      - postgres: { conninfo: "\(postgres.conninfo(password: "secret-pw-1"))", query: "select 40 + 2", expect: "42" }
                    within: 10s
                  - id: tell
                    manual: "Tell the team"
                    optional: true

                """)
            let result = try f.recover(["dr", "--yes"])
            #expect(result.status == 0, "\(result.all)")
            #expect(try String(contentsOfFile: out + "/sub/b.txt", encoding: .utf8) == "beta\n")
            let marks = f.lines(f.dir.subpath("marks.txt"))
            #expect(marks.count == 2 && marks.last == "alpha")
            #expect(result.stdout.contains("[1/4] restore-app passed"))
            #expect(result.stdout.contains("[4/4] tell skipped"))
            #expect(result.stdout.contains("data loss"))
            // The finished journal is kept under its end time; the next recover starts fresh.
            #expect(!FileManager.default.fileExists(atPath: f.journal))
            let archived = try #require(f.archivedJournals.first)
            #expect(f.mode(archived) == 0o600 && f.mode(f.state + "/recover") == 0o700)
            let entries = f.entries(archived)
            #expect(entries.first?.event == .header && entries.first?.digest?.count == 64)
            let ends = entries.filter { $0.event == .end }.compactMap(\.result)
            #expect(ends.map(\.id) == ["restore-app", "mark", "web", "tell"])
            #expect(ends.map(\.outcome) == [.passed, .passed, .passed, .skipped])
            #expect(ends[0].restoredPoint != nil)
            #expect(marks.first == ends[0].restoredPoint.map(RunbookVariables.format))
            #expect(entries.last?.event == .finished && entries.last?.outcome == "passed")
            // The audit log: who, the runbook's digest, the restore point, each step and check.
            let records = f.lines(f.state + "/audit.jsonl").compactMap {
                try? RecoveryJournal.decoder.decode(AuditLog.Record.self, from: Data($0.utf8))
            }
            #expect(records.map(\.event) == ["started", "finished"])
            #expect(f.mode(f.state + "/audit.jsonl") == 0o600)
            let finished = try #require(records.last)
            #expect(finished.event == "finished" && finished.outcome == "passed" && finished.digest == entries.first?.digest)
            #expect(finished.restorePoints["restore-app"] == ends[0].restoredPoint)
            #expect(finished.steps?.first { $0.id == "web" }?.checks?.map(\.passed) == [true, true])
            #expect(!f.lines(f.state + "/audit.jsonl").joined().contains("secret-pw-1"))
            #expect(!finished.user.isEmpty && !finished.host.isEmpty)

            let again = try f.recover(["dr", "--yes"])
            #expect(again.status == 1, "the target is no longer empty: \(again.all)")
            #expect(again.stdout.contains("FAILED target directory"))
        }
    }

    @Test func resumeAfterAKillAtStepThreeDoesNotRepeatStepsOneAndTwo() async throws {
        try await offThePool {
            let f = try RecoverFixture()
            defer { f.dir.remove() }
            try f.runbook(RecoverFixture.echo("one") + RecoverFixture.echo("two") + """
                  - id: three
                    run: { shell: "if [ -e go ]; then echo three >> ran.txt; else echo $$$$ > three.pid; exec sleep 60; fi" }

                """ + RecoverFixture.echo("four"))
            let running = try LifeboatCLI.start(["recover", "dr", "--yes"], config: f.dir.path)
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, !f.entries(f.journal).contains(where: { $0.event == .start && $0.step == "three" }) {
                usleep(50_000)
            }
            #expect(f.entries(f.journal).contains { $0.event == .start && $0.step == "three" })
            let second = try f.recover(["dr", "--yes", "--resume"])
            #expect(second.status == 1 && second.stderr.contains("another 'lifeboat recover dr' is running"), "\(second.all)")
            kill(running.pid, SIGKILL)
            _ = try running.wait()
            // The killed run's step is left running, as after a crash; end it.
            if let pid = Int32(f.lines(f.dir.subpath("three.pid")).first ?? "") { kill(pid, SIGKILL) }

            let refused = try f.recover(["dr", "--yes"])
            #expect(refused.status == 2 && refused.stderr.contains("--resume"), "\(refused.all)")

            _ = try f.dir.write("go", "")
            let resumed = try f.recover(["dr", "--yes", "--resume"])
            #expect(resumed.status == 0, "\(resumed.all)")
            #expect(f.ran == ["one", "two", "three", "four"])
        }
    }

    /// Whether process `pid` still runs (a zombie waiting for its reaper does not).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    @Test func aSigtermDuringAStepThatIgnoresItLeavesNoCommandRunningAndResumeFinishes() async throws {
        try await offThePool {
            let f = try RecoverFixture()
            defer { f.dir.remove() }
            try f.runbook(RecoverFixture.echo("one") + """
                  - id: two
                    run: { shell: "if [ -e go ]; then echo two >> ran.txt; else trap '' TERM; echo $$$$ > two.pid; sleep 60; fi" }

                """ + RecoverFixture.echo("three"))
            let (running, pid) = try f.startRecoverUntilStepTwoRuns()
            kill(running.pid, SIGTERM)
            let stopped = try running.wait()
            #expect(stopped.status == 143, "\(stopped.all)")
            // The step's shell ignores SIGTERM; it must not outlive the recovery that started it.
            let gone = Date().addingTimeInterval(10)
            while Date() < gone, Self.isRunning(pid) { usleep(50_000) }
            let survived = Self.isRunning(pid)
            if survived { kill(-pid, SIGKILL) }
            #expect(!survived, "the command of step 'two' still runs after lifeboat ended")
            let state = RecoveryJournal.State.read((try? String(contentsOfFile: f.journal, encoding: .utf8)) ?? "")
            // 'two' started and did not pass (its end, cancelled, may or may not have been written
            // before the watchdog ended the process): --resume runs it again.
            #expect(state.completed == ["one"] && (state.interrupted == "two" || state.results["two"]?.outcome == .cancelled), "\(state)")

            _ = try f.dir.write("go", "")
            let resumed = try f.recover(["dr", "--yes", "--resume"])
            #expect(resumed.status == 0, "\(resumed.all)")
            #expect(f.ran == ["one", "two", "three"])
        }
    }

    @Test func aSigtermDuringARunStepStopsItsGroupAndExits143() async throws {
        try await offThePool {
            let f = try RecoverFixture()
            defer { f.dir.remove() }
            try f.runbook(RecoverFixture.echo("one") + """
                  - id: two
                    run: { shell: "echo $$$$ > two.pid; sleep 60; echo two >> ran.txt" }

                """)
            let (running, pid) = try f.startRecoverUntilStepTwoRuns()
            kill(running.pid, SIGTERM)
            let stopped = try running.wait()
            #expect(stopped.status == 143, "\(stopped.all)")
            #expect(stopped.stderr.contains("cancelled (SIGTERM)") && stopped.stderr.contains("--resume"), "\(stopped.all)")
            #expect(!Self.isRunning(pid))
            #expect(f.entries(f.journal).last?.outcome == "aborted")
            #expect(f.ran == ["one"])
        }
    }

    @Test func retrySkipAndAChangedRunbookRefusingTheOldJournal() async throws {
        try await offThePool {
            let f = try RecoverFixture()
            defer { f.dir.remove() }
            let steps = RecoverFixture.echo("one") + """
                  - id: two
                    run: { shell: "test -e ok" }

                """ + RecoverFixture.echo("three")
            try f.runbook(steps)
            let failed = try f.recover(["dr", "--yes"])
            #expect(failed.status == 1 && failed.stderr.contains("step 'two'"), "\(failed.all)")
            #expect(f.ran == ["one"])

            _ = try f.dir.write("ok", "")
            let retried = try f.recover(["dr", "--yes", "--retry", "two"])
            #expect(retried.status == 0, "\(retried.all)")
            #expect(f.ran == ["one", "three"])

            try FileManager.default.removeItem(atPath: f.dir.subpath("ok"))
            let again = try f.recover(["dr", "--yes"])
            #expect(again.status == 1)
            let skipped = try f.recover(["dr", "--yes", "--skip", "two"])
            #expect(skipped.status == 0, "\(skipped.all)")
            let archived = try #require(f.archivedJournals.max())
            let results = f.entries(archived).compactMap(\.result)
            #expect(results.last { $0.id == "two" }?.outcome == .skipped)

            _ = try f.recover(["dr", "--yes"])
            try f.runbook(steps + "  - wait: 1s\n")
            let changed = try f.recover(["dr", "--yes", "--resume"])
            #expect(changed.status == 2 && changed.stderr.contains("another version") && changed.stderr.contains("--restart"), "\(changed.all)")
            let restarted = try f.recover(["dr", "--yes", "--restart", "--skip", "two"])
            #expect(restarted.status == 0, "\(restarted.all)")
        }
    }

    @Test func thePlanNamesTheRestorePointItsDataLossAndANonEmptyTarget() async throws {
        try await offThePool {
            let f = try RecoverFixture()
            defer { f.dir.remove() }
            _ = try f.dir.write("busy/x", "x")
            try f.runbook("""
                  - restore: app
                    target: { path: busy }
                  - run: [echo, "${steps.restore-app.restored_point}"]

                """)
            let plan = try f.recover(["dr", "--plan"])
            #expect(plan.status == 0, "\(plan.all)")
            #expect(plan.stdout.contains("restored point") && plan.stdout.contains("data loss"))
            #expect(plan.stdout.contains("FAILED target directory") && plan.stdout.contains("not empty"))
            let json = try f.recover(["dr", "--plan", "--json"])
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let steps = object?["steps"] as? [[String: Any]]
            let restore = steps?.first?["restore"] as? [String: Any]
            #expect(restore?["backup"] as? String != nil && restore?["dataLossSeconds"] as? Double != nil)
            let refused = try f.recover(["dr", "--yes"])
            #expect(refused.status == 1 && refused.stderr.contains("preflight"), "\(refused.all)")
            let unknown = try f.recover(["nope", "--plan"])
            #expect(unknown.status == 2)
            let badAt = try f.recover(["dr", "--plan", "--at", "yesterday-ish"])
            #expect(badAt.status == 2)
        }
    }

    @Test func aFailingCriticalStepStopsTheRunAndAnOptionalOneDoesNot() async throws {
        try await offThePool {
            let f = try RecoverFixture()
            defer { f.dir.remove() }
            try f.runbook("""
                  - id: maybe
                    run: [false]
                    optional: true
                  - id: must
                    run: { shell: "echo broken >&2; exit 3" }
                  - id: after
                    run: { shell: "echo after >> ran.txt" }

                """)
            let result = try f.recover(["dr", "--yes"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("step 'must'") && result.stderr.contains("broken"), "\(result.all)")
            #expect(result.stdout.contains("maybe failed"))
            #expect(!FileManager.default.fileExists(atPath: f.dir.subpath("ran.txt")))
        }
    }
}

/// The runner in the test's process, without the command line: timeouts, retries, parallel
/// groups, waits through the injected sleep.
@Suite(.timeLimit(.minutes(10)))
struct RunbookRunnerSteps {
    final class Sleeps: Sendable {
        let values = Mutex<[Double]>([])
    }

    @Test func timeoutRetryParallelAndWait() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory("lifeboat-runner")
            defer { dir.remove() }
            func sh(_ script: String) -> RunbookStep.Kind {
                .run(CommandSpec(program: .shell(RunbookTemplate(literal: script)), baseDirectory: dir.path))
            }
            let runbook = Runbook(name: "t", file: "runbooks/t.yaml", steps: [
                RunbookStep(id: "slow", kind: sh("sleep 30"), timeout: ConfigDuration(seconds: 1), critical: false),
                RunbookStep(id: "flaky", kind: sh("echo x >> flaky.txt; exit 1"), retry: StepRetry(attempts: 3, delay: ConfigDuration(seconds: 7)),
                            critical: false),
                RunbookStep(id: "both", kind: .parallel([
                    RunbookStep(id: "left", kind: sh("touch left; while [ ! -e right ]; do sleep 0.05; done"), timeout: ConfigDuration(seconds: 20)),
                    RunbookStep(id: "right", kind: sh("touch right; while [ ! -e left ]; do sleep 0.05; done"), timeout: ConfigDuration(seconds: 20)),
                ])),
                RunbookStep(id: "pause", kind: .wait(ConfigDuration(seconds: 30))),
                RunbookStep(id: "drill-only", kind: sh("touch drilled"), when: .drill),
            ])
            let sleeps = Sleeps()
            var runner = RunbookRunner(runbook: runbook, mode: .recover, source: .configuration(Configuration(directory: dir.path)),
                                       context: RunContext(logger: quietLogger), prompter: UnattendedPrompter())
            runner.sleep = { seconds, _ in sleeps.values.withLock { $0.append(seconds) } }
            let started = Date()
            let outcome = runner.run(variables: RunbookVariables(runbook: runbook, mode: .recover, environment: [:], recoveryTargetTime: nil))
            #expect(Date().timeIntervalSince(started) < 15)
            #expect(outcome.passed)
            #expect(outcome.results.map(\.id) == ["slow", "flaky", "both", "pause"])
            #expect(outcome.results.map(\.outcome) == [.timedOut, .failed, .passed, .passed])
            #expect(outcome.results[1].attempts == 3)
            #expect(try String(contentsOfFile: dir.subpath("flaky.txt"), encoding: .utf8) == "x\nx\nx\n")
            #expect(outcome.results[2].steps.map(\.outcome) == [.passed, .passed])
            #expect(sleeps.values.withLock { $0 } == [7, 7, 30])
            #expect(!FileManager.default.fileExists(atPath: dir.subpath("drilled")))
        }
    }
}

/// `recover` in a real terminal: a tmux session, driven with `send-keys`, read with `capture-pane`.
@Suite(.timeLimit(.minutes(10)))
struct RecoverGuidedMode {
    static func tmux(_ arguments: [String]) throws -> String {
        let tmux = try requireProgram("tmux", in: ["/usr/bin", "/bin", "/usr/local/bin"], hint: "Install the Debian package tmux (scripts/test does).")
        let child = try ChildProcess.spawn(tmux, arguments, stdin: .null, stdout: .pipe)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try child.readStdout(into: $0) }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        _ = try child.wait()
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits until the pane shows `text` (the screen, to a deadline).
    static func waitFor(_ text: String, session: String) throws -> String {
        let deadline = Date().addingTimeInterval(60)
        var screen = ""
        while Date() < deadline {
            screen = try tmux(["capture-pane", "-p", "-t", session])
            if screen.contains(text) { return screen }
            usleep(100_000)
        }
        throw TestSupportError("'\(text)' never appeared in the terminal:\n\(screen)")
    }

    @Test func confirmSkipAndAbortInATerminal() async throws {
        try await offThePool {
            let f = try RecoverFixture()
            defer { f.dir.remove() }
            try f.runbook(RecoverFixture.echo("one") + RecoverFixture.echo("two") + RecoverFixture.echo("three"))
            let session = "lifeboat-recover-\(getpid())"
            let status = f.dir.subpath("status")
            let command = "LOG_LEVEL=error \(try LifeboatCLI.executable) recover dr --config \(f.dir.path); echo \"exit=$?\" > \(status); sleep 600"
            _ = try Self.tmux(["new-session", "-d", "-x", "200", "-y", "50", "-s", session, command])
            defer { _ = try? Self.tmux(["kill-session", "-t", session]) }

            _ = try Self.waitFor("[1/3] one: run sh -c", session: session)
            _ = try Self.tmux(["send-keys", "-t", session, "Enter"])
            _ = try Self.waitFor("[2/3] two: run sh -c", session: session)
            _ = try Self.tmux(["send-keys", "-t", session, "s", "Enter"])
            _ = try Self.waitFor("[3/3] three: run sh -c", session: session)
            _ = try Self.tmux(["send-keys", "-t", session, "a", "Enter"])
            let screen = try Self.waitFor("aborted", session: session)
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, !FileManager.default.fileExists(atPath: status) { usleep(100_000) }
            #expect(try String(contentsOfFile: status, encoding: .utf8) == "exit=1\n", "\(screen)")
            #expect(f.ran == ["one"])
            let results = f.entries(f.journal).compactMap(\.result)
            #expect(results.map(\.id) == ["one", "two", "three"])
            #expect(results.map(\.outcome) == [.passed, .skipped, .cancelled])
            #expect(results.last?.detail == "aborted by the operator")
            #expect(f.entries(f.journal).last?.outcome == "aborted")
            let audit = f.lines(f.state + "/audit.jsonl").compactMap {
                try? RecoveryJournal.decoder.decode(AuditLog.Record.self, from: Data($0.utf8))
            }
            #expect(audit.last?.outcome == "aborted")
        }
    }
}

/// `lifeboat export systemd`: `lifeboat-scheduler.service` for the daemon, and for each
/// scheduled policy (and prune, and each scheduled runbook's drill) a `Type=oneshot` service
/// with a timer whose `OnCalendar=` lines are its cron schedule in its time zone. Pure: the
/// caller writes the files.
///
/// The daemon and the timers are two ways to run the same schedule: enable one of them.
public enum SystemdExport {
    public struct Options: Sendable {
        /// The `lifeboat` executable, absolute.
        public var binary: String
        /// `User=` of every service; nil: root.
        public var user: String?

        public init(binary: String, user: String? = nil) {
            self.binary = binary
            self.user = user
        }
    }

    public struct Result: Sendable {
        public var files: [ExportedFile]
        public var notes: [String]

        /// Every unit, each after a `# NAME` line.
        public var stream: String { files.map { "# \($0.name)\n\($0.text)" }.joined(separator: "\n") }
    }

    /// More than `scheduler.stop_timeout`: systemd's SIGKILL must come after the daemon's own
    /// stop deadline and the cleanup of the runs it cancels.
    public static let stopMargin: Int64 = 30

    public static func generate(configuration: Configuration, options: Options) throws -> Result {
        let blocking = configuration.problems
        if !blocking.isEmpty { throw LifeboatErrors(blocking.map(\.error)) }
        guard options.binary.hasPrefix("/") else {
            throw LifeboatError(.usage, "--binary '\(options.binary)' is not an absolute path", hint: "systemd runs ExecStart= by its absolute path.")
        }
        if let user = options.user, user.isEmpty || user.contains(where: { $0.isWhitespace }) {
            throw LifeboatError(.usage, "--user '\(user)' is not a user name")
        }
        let scheduler = configuration.scheduler
        let base = [options.binary, "--config", configuration.directory]
        // ProtectSystem=full makes /usr, /boot and /etc read-only: what Lifeboat writes
        // (the state directory, local repositories) is allowed back ("-": if it exists).
        var writable = [configuration.resolvedStateDirectory]
        for repository in configuration.repositoriesInUse {
            if case .local(let path) = repository.kind { writable.append(path) }
        }
        var files: [ExportedFile] = []
        var notes: [String] = []
        files.append(ExportedFile(name: "lifeboat-scheduler.service", text: unit([
            ("Unit", [
                ("Description", "Lifeboat scheduler: backups by their schedules (\(configuration.directory))"),
                ("Wants", "network-online.target"),
                ("After", "network-online.target"),
            ]),
            ("Service", [
                ("Type", "simple"),
                ("ExecStart", commandLine(base + ["schedule"])),
                ("KillSignal", "SIGTERM"),
                ("TimeoutStopSec", "\(scheduler.stopTimeout.seconds + stopMargin)s"),
                ("Restart", "on-failure"),
                ("RestartSec", "10s"),
            ] + account(options) + hardening(writable)),
            ("Install", [("WantedBy", "multi-user.target")]),
        ])))

        var owners: [String: String] = [:]
        // Every name too long or taken twice is reported at once.
        var refused = RefusedObjects()
        func addTimer(_ name: String, what: String, description: String, schedule: Schedule, arguments: [String], writable extra: [String]) {
            // A unit's name has at most 255 characters; escaping makes a '-' four.
            if name.utf8.count + ".service".utf8.count > 255 {
                refused.refuse(LifeboatError(.configuration, "\(what) makes the unit name \(name).service, longer than systemd's 255 characters",
                                             hint: "Use a shorter name, with fewer characters other than letters, digits, '_' and '.'."))
                return
            }
            if let other = owners[name] {
                refused.refuse(LifeboatError(.configuration, "\(other) and \(what) would both be the unit \(name)", hint: "Rename one of them."))
                return
            }
            owners[name] = what
            files.append(ExportedFile(name: "\(name).service", text: unit([
                ("Unit", [
                    ("Description", description),
                    ("Wants", "network-online.target"),
                    ("After", "network-online.target"),
                ]),
                ("Service", [
                    ("Type", "oneshot"),
                    ("ExecStart", commandLine(base + arguments)),
                    ("KillSignal", "SIGTERM"),
                    // scheduler.run_timeout, as the daemon cancels a run that long.
                    ("TimeoutStartSec", "\(scheduler.runTimeout.seconds)s"),
                ] + account(options) + hardening(writable + extra)),
            ])))
            var timer: [(String, String)] = schedule.cron.onCalendar(timeZone: schedule.timezone).map { ("OnCalendar", $0) }
            timer += [("AccuracySec", "1s"), ("Persistent", "true")]
            if let jitter = schedule.jitter, jitter.seconds > 0 {
                timer += [("RandomizedDelaySec", "\(jitter.seconds)s"), ("FixedRandomDelay", "true")]
            }
            files.append(ExportedFile(name: "\(name).timer", text: unit([
                ("Unit", [("Description", "\(description): \(schedule.cron) \(schedule.timezone)")]),
                ("Timer", timer),
                ("Install", [("WantedBy", "timers.target")]),
            ])))
        }
        for policy in configuration.policies {
            guard let schedule = policy.schedule else { continue }
            addTimer("lifeboat-backup-\(escapeUnitName(policy.name))", what: "policy '\(policy.name)'",
                     description: "Lifeboat backup of policy \(policy.name)", schedule: schedule,
                     arguments: ["backup", policy.name], writable: [])
        }
        let prune = configuration.scheduler.prune
            ?? Schedule(cron: try! CronExpression(parsing: KubernetesExport.defaultPruneSchedule), timezone: "UTC")  // a constant that parses
        if configuration.scheduler.prune == nil {
            notes.append("scheduler.prune is not set: lifeboat-prune.timer uses \(KubernetesExport.defaultPruneSchedule) UTC")
        }
        addTimer("lifeboat-prune", what: "prune", description: "Lifeboat prune of every policy", schedule: prune,
                 arguments: ["prune"], writable: [])
        for runbook in configuration.runbooks {
            guard let schedule = runbook.schedule else { continue }
            var targets: [String] = []
            for step in runbook.restoreSteps {
                switch step.target.target.location {
                case .directory(let path), .dataDirectory(let path): targets.append(path)
                default: break
                }
            }
            addTimer("lifeboat-drill-\(escapeUnitName(runbook.name))", what: "runbook '\(runbook.name)'",
                     description: "Lifeboat drill of runbook \(runbook.name)", schedule: schedule,
                     arguments: ["drill", runbook.name], writable: targets)
        }
        try refused.throwIfAny()
        if configuration.policies.contains(where: { ($0.schedule?.timezone ?? "UTC") != "UTC" }) {
            notes.append("on the day clocks are set forward, systemd skips a scheduled local time that does not occur, where lifeboat schedule runs it at the change")
        }
        notes.append("enable either lifeboat-scheduler.service or the timers, not both (both would run every backup twice)")
        return Result(files: files, notes: notes)
    }

    static func account(_ options: Options) -> [(String, String)] {
        options.user.map { [("User", $0)] } ?? []
    }

    /// Hardening that leaves what Lifeboat does working: it reads any path a files policy
    /// names (no ProtectHome, no private /tmp: a PostgreSQL socket may be in /tmp), writes its
    /// state directory and local repositories, and starts pg_dump and friends.
    static func hardening(_ writable: [String]) -> [(String, String)] {
        var lines: [(String, String)] = [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "full"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"),
            ("ProtectKernelLogs", "yes"),
            ("ProtectControlGroups", "yes"),
            ("ProtectClock", "yes"),
            ("ProtectHostname", "yes"),
            ("RestrictRealtime", "yes"),
            ("RestrictSUIDSGID", "yes"),
            ("LockPersonality", "yes"),
        ]
        var seen: Set<String> = []
        for path in writable where seen.insert(path).inserted {
            lines.append(("ReadWritePaths", "-" + quoteArgument(path, expandsVariables: false)))
        }
        return lines
    }

    /// How every unit starts (then the version).
    public static let header = "# Generated by lifeboat export systemd"

    static func unit(_ sections: [(String, [(String, String)])]) -> String {
        var text = "\(header) \(LifeboatVersion.current).\n"
        for (index, (name, lines)) in sections.enumerated() {
            if index > 0 { text += "\n" }
            text += "[\(name)]\n"
            for (key, value) in lines {
                // Description= expands specifiers: a '%' of a path or name is written '%%'.
                text += "\(key)=\(key == "Description" ? value.replacingOccurrences(of: "%", with: "%%") : value)\n"
            }
        }
        return text
    }

    /// An `ExecStart=` command line: each argument as is when it is plain, else in double
    /// quotes; `%` and `$` doubled so that systemd expands neither.
    static func commandLine(_ arguments: [String]) -> String {
        arguments.map { quoteArgument($0) }.joined(separator: " ")
    }

    /// `expandsVariables`: whether systemd expands `$NAME` in the setting (ExecStart= does,
    /// ReadWritePaths= does not); specifiers (`%`) are expanded in both.
    static func quoteArgument(_ argument: String, expandsVariables: Bool = true) -> String {
        var text = argument.replacingOccurrences(of: "%", with: "%%")
        if expandsVariables { text = text.replacingOccurrences(of: "$", with: "$$") }
        let plain = !text.isEmpty && text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "/_.:=+,@%$-".unicodeScalars.contains($0)
        }
        if plain { return text }
        text = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\"\(text)\""
    }

    /// `systemd-escape NAME`: `/` becomes `-`; every byte but ASCII letters, digits, `:`, `_`
    /// and `.` (not first) becomes `\xNN`.
    public static func escapeUnitName(_ name: String) -> String {
        var result = ""
        for (index, byte) in name.utf8.enumerated() {
            let scalar = Unicode.Scalar(byte)
            let plain = ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || scalar == ":" || scalar == "_" || (scalar == "." && index > 0)
            if scalar == "/" {
                result += "-"
            } else if plain {
                result.unicodeScalars.append(scalar)
            } else {
                let hex = String(byte, radix: 16)
                result += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }
}

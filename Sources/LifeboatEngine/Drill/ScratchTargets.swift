import Foundation
import Glibc
import LifeboatCore
import LifeboatIO
import Synchronization

/// What one drill created to restore into, and the marker file that lists it,
/// `<state_dir>/drills/scratch/<drill id>.json` (0600): written before each target is
/// created, so that whatever happens to the drill its targets are known. The drill removes
/// them when it ends — passed, failed or cancelled — and then the marker; a drill that was
/// killed (`SIGKILL`, a crash) leaves the marker, and the next drill removes its targets once
/// the process that wrote it is gone (`removeLeftovers`).
public final class ScratchTargets: Sendable {
    public struct Target: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable { case directory, postgres, redis, s3 }
        public var kind: Kind
        public var step: String
        /// `directory`: the directory; `postgres`: its data directory; `redis`: its directory.
        public var path: String?
        /// `postgres`: where its server programs are.
        public var binDir: String?
        /// `redis`: the server's pid and start ticks.
        public var pid: Int32?
        public var processStart: UInt64?
        /// `s3`: the scratch prefix.
        public var s3: S3MirrorScratch?
    }

    struct Marker: Codable, Sendable {
        var runbook: String
        var drill: String
        var host: String
        var pid: Int32
        var processStart: UInt64?
        var bootID: String?
        /// Everything local lives under it.
        var root: String
        var targets: [Target]
    }

    public let path: String
    /// `<tmp>/lifeboat-drill-<id>`: every scratch directory is under it.
    public let root: String
    public let id: String
    private let marker: Mutex<Marker>

    static func directory(stateDirectory: String) -> String { stateDirectory + "/drills/scratch" }

    /// Writes the marker of a new drill (before anything is created).
    public init(stateDirectory: String, runbook: String, id: String, temporaryDirectory: String, context: RunContext) throws {
        let directory = Self.directory(stateDirectory: stateDirectory)
        try makeDirectories(directory, mode: 0o700)
        self.id = id
        path = "\(directory)/\(id).json"
        root = "\(temporaryDirectory)/lifeboat-drill-\(id)"
        let identity = ProcessProbe.current(host: context.host)
        marker = Mutex(Marker(runbook: runbook, drill: id, host: context.host, pid: context.pid, processStart: identity.processStart,
                              bootID: identity.bootID, root: root, targets: []))
        try write()
        try makeDirectories(temporaryDirectory, mode: 0o700)
        if mkdir(root, 0o700) != 0 {
            throw LifeboatError(.io, "unable to create the drill's scratch directory '\(root)': \(errnoText())",
                                hint: "Check that \(temporaryDirectory) is writable (state_dir/tmp, else TMPDIR).")
        }
    }

    private func write() throws {
        let bytes = try marker.withLock { Array(try JSON.encode($0)) }
        try LocalFile.replace(path, with: bytes, sync: true)
    }

    /// Records a target before it is created (or once its server runs).
    public func record(_ target: Target) throws {
        marker.withLock { marker in
            if let index = marker.targets.firstIndex(where: { $0.step == target.step && $0.kind == target.kind }) {
                marker.targets[index] = target
            } else {
                marker.targets.append(target)
            }
        }
        try write()
    }

    public var targets: [Target] { marker.withLock { $0.targets } }

    /// Removes every target and then the marker; returns what could not be removed (the
    /// marker then stays, for the next drill). `quick`: the drill was cancelled (servers are
    /// stopped at once, not fast).
    public func removeAll(sources: (String) -> (any SourceConfiguration)?, quick: Bool, context: RunContext) -> [String] {
        let marker = self.marker.withLock { $0 }
        let problems = Self.remove(marker, sources: sources, quick: quick, context: context)
        if problems.isEmpty { _ = try? LocalFile.remove(path) }
        return problems
    }

    static func remove(_ marker: Marker, sources: (String) -> (any SourceConfiguration)?, quick: Bool, context: RunContext) -> [String] {
        var problems: [String] = []
        // Servers first (they hold their directories), then objects, then the directories.
        for target in marker.targets.reversed() {
            switch target.kind {
            case .postgres:
                if let data = target.path, let problem = ScratchPostgres.stop(dataDirectory: data, binDir: target.binDir, quick: quick) {
                    problems.append(problem)
                }
            case .redis:
                if let pid = target.pid { ScratchRedis.stop(pid: pid, start: target.processStart) }
            case .s3:
                guard let s3 = target.s3 else { continue }
                do {
                    let removed = try s3.removeObjects(source: sources(s3.policy), context: context.forCleanup)
                    context.logger.info("scratch objects removed", metadata: ["drill.target": "s3://\(s3.bucket)/\(s3.prefix)", "drill.objects": "\(removed)"])
                } catch {
                    problems.append("the scratch objects under s3://\(s3.bucket)/\(s3.prefix) could not be removed: \(error)")
                }
            case .directory:
                break
            }
        }
        let local = [marker.root] + marker.targets.compactMap { $0.kind == .s3 ? nil : $0.path }.filter { !$0.hasPrefix(marker.root + "/") }
        for directory in local where pathExists(directory) {
            do {
                try FileManager.default.removeItem(atPath: directory)
            } catch {
                problems.append("the scratch directory '\(directory)' could not be removed: \(error)")
            }
        }
        return problems
    }

    /// Removes the targets of drills whose process is gone (killed, crashed): every marker in
    /// `<state_dir>/drills/scratch` but those of running drills, and the temporary files of
    /// markers they were writing. Returns the drills cleaned up and what could not be removed.
    public static func removeLeftovers(stateDirectory: String, sources: (String) -> (any SourceConfiguration)?,
                                       context: RunContext) -> (removed: [String], problems: [String]) {
        let directory = directory(stateDirectory: stateDirectory)
        var removed: [String] = []
        var problems: [String] = []
        let entries = (try? directoryEntries(directory)) ?? []
        // A drill killed while writing its marker leaves the marker's temporary file
        // (`.<id>.json.<pid>.<n>.tmp`, `LocalFile.replace`), beside the marker or alone.
        for name in entries where name.hasPrefix(".") && name.hasSuffix(".tmp") {
            guard let json = name.range(of: ".json.") else { continue }
            let marker = String(name[name.index(after: name.startIndex)..<json.lowerBound]) + ".json"
            for stale in LocalFile.removeStaleTemporaries(beside: directory + "/" + marker) {
                context.logger.info("removed a dead drill's unfinished marker", metadata: ["drill.marker": "\(stale)"])
            }
        }
        for name in entries where name.hasSuffix(".json") {
            let path = directory + "/" + name
            guard let text = try? readTextFile(path), let marker = try? JSON.decode(Marker.self, from: Data(text.utf8)) else { continue }
            let sameBoot = marker.bootID == nil || marker.bootID == ProcessProbe.bootID
            if marker.host == context.host, sameBoot, ProcessProbe.runs(pid: marker.pid, start: marker.processStart) { continue }
            if marker.host != context.host { continue }  // another machine's drill: not ours to judge
            context.logger.warning("removing the scratch targets of a drill that did not end", metadata: [
                "drill.id": "\(marker.drill)", "drill.runbook": "\(marker.runbook)", "drill.pid": "\(marker.pid)",
            ])
            let left = remove(marker, sources: sources, quick: true, context: context)
            if left.isEmpty {
                _ = try? LocalFile.remove(path)
                removed.append(marker.drill)
            } else {
                problems += left
            }
        }
        return (removed, problems)
    }
}

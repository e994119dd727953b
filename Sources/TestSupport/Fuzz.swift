import CLifeboatSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Seeded generative fuzzing for the parsers: inputs are valid documents made by the real
/// writers, mutated by a deterministic PRNG (bit flips, byte insertions and deletions,
/// truncations, splices of tokens of the format, inflated length fields), and each is handed
/// to the target. A target passes when every input parses or throws an error the caller
/// accepts, each within a time bound; a crash kills the test process, which is the failure.
///
/// The run prints its seed; `LIFEBOAT_FUZZ_SEED=<n>` replays it (or `random` for a new one),
/// `LIFEBOAT_FUZZ_ITERATIONS=<n>` runs longer than the default bound kept for CI.
public enum Fuzz {
    /// What a run found: inputs that were neither parsed nor refused with an accepted error,
    /// or that took too long.
    public struct Report: Sendable, CustomStringConvertible {
        public var target: String
        public var seed: UInt64
        public var iterations: Int
        public var parsed = 0
        public var refused = 0
        public var slowest: Duration = .zero
        public var failures: [String] = []

        public var description: String {
            var text = "fuzz \(target): seed \(seed), \(iterations) inputs, \(parsed) parsed, \(refused) refused, slowest \(slowest)"
            if !failures.isEmpty {
                text += "; \(failures.count) failures (replay with LIFEBOAT_FUZZ_SEED=\(seed)):\n" + failures.prefix(5).joined(separator: "\n")
            }
            return text
        }
    }

    /// `LIFEBOAT_FUZZ_ITERATIONS`, or `defaultCount`.
    public static func iterations(default defaultCount: Int) -> Int {
        if let text = ProcessInfo.processInfo.environment["LIFEBOAT_FUZZ_ITERATIONS"], let count = Int(text), count > 0 {
            return count
        }
        return defaultCount
    }

    /// `LIFEBOAT_FUZZ_SEED` (a number, or `random`), else a seed fixed per target, so that CI
    /// runs the same inputs every time.
    public static func seed(for target: String) -> UInt64 {
        switch ProcessInfo.processInfo.environment["LIFEBOAT_FUZZ_SEED"] {
        case "random"?: return UInt64.random(in: 1...UInt64.max)
        case let text? where UInt64(text) != nil: return UInt64(text)!
        default:
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
            for byte in target.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return hash
        }
    }

    /// Runs `body` on `iterations` mutations of the seeds (and on each seed as it is). An
    /// error `accept` refuses, or an input taking longer than `timeLimit`, is a failure of
    /// the report, with the input (base64) and what happened.
    public static func run(
        _ target: String, seeds: [[UInt8]], dictionary: [[UInt8]] = [], iterations defaultCount: Int,
        timeLimit: Duration = .seconds(2), maximumLength: Int = 1 << 20,
        accept: (any Error) -> Bool, _ body: ([UInt8]) throws -> Void
    ) -> Report {
        let seed = seed(for: target)
        let count = iterations(default: defaultCount)
        var random = FuzzRandom(seed: seed)
        let mutator = FuzzMutator(dictionary: dictionary, maximumLength: maximumLength)
        var report = Report(target: target, seed: seed, iterations: count + seeds.count)
        print("fuzz \(target): seed \(seed), \(count) mutated inputs")
        let clock = ContinuousClock()
        for index in 0..<(count + seeds.count) {
            let input: [UInt8]
            if index < seeds.count {
                input = seeds[index]
            } else {
                var mutated = seeds.isEmpty ? [] : seeds[random.below(seeds.count)]
                for _ in 0...random.below(4) { mutated = mutator.mutate(mutated, other: seeds.isEmpty ? [] : seeds[random.below(seeds.count)], using: &random) }
                input = mutated
            }
            var outcome: String?
            let elapsed = clock.measure {
                do {
                    try body(input)
                    report.parsed += 1
                } catch {
                    if accept(error) { report.refused += 1 } else { outcome = "unaccepted error \(type(of: error)): \(error)" }
                }
            }
            report.slowest = max(report.slowest, elapsed)
            if elapsed > timeLimit { outcome = (outcome.map { $0 + "; " } ?? "") + "took \(elapsed), more than \(timeLimit)" }
            if let outcome {
                report.failures.append("input \(index) (\(input.count) bytes, base64 \(Data(input.prefix(4096)).base64EncodedString())): \(outcome)")
            }
        }
        print(report)
        return report
    }

    /// The peak resident set size of the process, in bytes, since the last `resetPeakMemory()`
    /// (`VmHWM` of `/proc/self/status`); nil where there is none.
    public static func peakMemory() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let digits = line.split(separator: " ").dropFirst().first
            return digits.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// Resets the peak resident set size to the current one (`5` to `/proc/self/clear_refs`).
    /// Returns false when the kernel refused.
    @discardableResult
    public static func resetPeakMemory() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    /// How much the peak resident set size and the heap (malloc's `mallinfo2`: bytes in use,
    /// mmapped blocks included) grew while `body` ran — what an input that declares a huge
    /// length would make us allocate if it were believed.
    public static func memoryGrowth(_ body: () throws -> Void) rethrows -> (peak: Int, heap: Int) {
        func heap() -> Int { Int(lifeboat_heap_in_use()) }
        let peakKnown = resetPeakMemory()
        let peakBefore = peakMemory() ?? 0
        let heapBefore = heap()
        try body()
        let peakAfter = peakKnown ? (peakMemory() ?? 0) : peakBefore
        return (max(0, peakAfter - peakBefore), max(0, heap() - heapBefore))
    }
}

/// SplitMix64: small, fast, and the same sequence for the same seed on every platform.
public struct FuzzRandom: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound` (bound > 0).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// The mutations of `Fuzz.run`, one at a time.
public struct FuzzMutator: Sendable {
    /// Tokens of the format (keywords, delimiters, markers), spliced into inputs.
    public var dictionary: [[UInt8]]
    /// Mutations never make an input longer than this.
    public var maximumLength: Int

    public init(dictionary: [[UInt8]], maximumLength: Int = 1 << 20) {
        self.dictionary = dictionary
        self.maximumLength = maximumLength
    }

    /// Length fields made absurd: huge, negative, overflowing, in decimal and octal (tar).
    public static let inflatedNumbers: [[UInt8]] = [
        "999999999999", "-1", "-2", "2147483648", "4294967296", "9223372036854775807", "9223372036854775808",
        "18446744073709551616", "99999999999999999999999", "77777777777", "0", "1e308", "-0",
    ].map { Array($0.utf8) }

    public func mutate(_ input: [UInt8], other: [UInt8], using random: inout FuzzRandom) -> [UInt8] {
        var bytes = input
        switch random.below(10) {
        case 0 where !bytes.isEmpty:  // flip a bit
            let index = random.below(bytes.count)
            bytes[index] ^= UInt8(1) << UInt8(random.below(8))
        case 1:  // insert random bytes
            let count = 1 + random.below(8)
            let at = random.below(bytes.count + 1)
            bytes.insert(contentsOf: (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
        case 2 where !bytes.isEmpty:  // delete a range
            let at = random.below(bytes.count)
            let count = min(bytes.count - at, 1 + random.below(16))
            bytes.removeSubrange(at..<(at + count))
        case 3 where !bytes.isEmpty:  // truncate
            bytes.removeSubrange(random.below(bytes.count)...)
        case 4 where !dictionary.isEmpty, 5 where !dictionary.isEmpty:  // splice a token of the format
            let token = dictionary[random.below(dictionary.count)]
            let at = random.below(bytes.count + 1)
            if random.below(2) == 0 || at == bytes.count {
                bytes.insert(contentsOf: token, at: at)
            } else {
                bytes.replaceSubrange(at..<min(bytes.count, at + token.count), with: token)
            }
        case 6:  // inflate a decimal (or octal) number: the length fields of text formats
            let runs = Self.digitRuns(bytes)
            let number = Self.inflatedNumbers[random.below(Self.inflatedNumbers.count)]
            if runs.isEmpty {
                bytes.insert(contentsOf: number, at: random.below(bytes.count + 1))
            } else {
                bytes.replaceSubrange(runs[random.below(runs.count)], with: number)
            }
        case 7 where !bytes.isEmpty:  // overwrite 1, 2, 4 or 8 bytes with an extreme value: binary lengths
            let width = [1, 2, 4, 8][random.below(4)]
            let at = random.below(bytes.count)
            let extreme = ([0xFF, 0x80, 0x7F, 0x00, 0xFE] as [UInt8])[random.below(5)]
            for offset in 0..<width where at + offset < bytes.count {
                bytes[at + offset] = offset == 0 ? extreme : (extreme == 0x80 ? 0 : extreme)
            }
        case 8 where !other.isEmpty:  // splice a piece of another seed
            let from = random.below(other.count)
            let piece = other[from..<min(other.count, from + 1 + random.below(64))]
            bytes.insert(contentsOf: piece, at: random.below(bytes.count + 1))
        case 9 where !bytes.isEmpty:  // repeat a range (deep nesting, long runs)
            let at = random.below(bytes.count)
            let piece = Array(bytes[at..<min(bytes.count, at + 1 + random.below(16))])
            let times = 1 + random.below(64)
            bytes.insert(contentsOf: Array([[UInt8]](repeating: piece, count: times).joined()), at: at)
        default:
            let index = random.below(bytes.count + 1)
            bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
        }
        if bytes.count > maximumLength { bytes.removeSubrange(maximumLength...) }
        return bytes
    }

    /// The ranges of runs of ASCII digits.
    static func digitRuns(_ bytes: [UInt8]) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var start: Int?
        for (index, byte) in bytes.enumerated() {
            let digit = (0x30...0x39).contains(byte)
            if digit, start == nil { start = index }
            if !digit, let begin = start {
                runs.append(begin..<index)
                start = nil
            }
        }
        if let start { runs.append(start..<bytes.count) }
        return runs
    }
}

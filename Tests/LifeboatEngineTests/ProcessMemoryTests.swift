import LifeboatIO
import Testing

@Suite(.timeLimit(.minutes(10)))
struct ProcessMemoryTests {
    @Test func aLifeboatProcessLimitsItsMallocArenasUnlessTheOperatorSetsThem() {
        #expect(ProcessMemory.arenaLimit(environment: [:]) == 2)
        #expect(ProcessMemory.arenaLimit(environment: ["PATH": "/usr/bin"]) == ProcessMemory.defaultArenas)
        // glibc read MALLOC_ARENA_MAX when the process started; ours must not override it.
        #expect(ProcessMemory.arenaLimit(environment: ["MALLOC_ARENA_MAX": "8"]) == nil)
    }
}

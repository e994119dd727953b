// CRC-32C, see include/CLifeboatChecksum.h. Written for Lifeboat from the definition
// (RFC 3720, appendix B.4); the slicing-by-8 tables are derived from the polynomial at
// first use.
#include "CLifeboatChecksum.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#endif

static const uint32_t polynomial = 0x82F63B78u;  // 0x1EDC6F41, bit-reversed
static uint32_t table[8][256];
static pthread_once_t tableOnce = PTHREAD_ONCE_INIT;

static void buildTable(void) {
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t crc = byte;
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (polynomial & (0u - (crc & 1u)));
        table[0][byte] = crc;
    }
    for (uint32_t byte = 0; byte < 256; byte++) {
        for (int slice = 1; slice < 8; slice++) {
            uint32_t previous = table[slice - 1][byte];
            table[slice][byte] = (previous >> 8) ^ table[0][previous & 0xFF];
        }
    }
}

uint32_t lifeboat_crc32c_portable(uint32_t crc, const void *bytes, size_t length) {
    pthread_once(&tableOnce, buildTable);
    const unsigned char *p = bytes;
    crc = ~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        word = __builtin_bswap64(word);
#endif
        uint32_t low = (uint32_t)word ^ crc, high = (uint32_t)(word >> 32);
        crc = table[7][low & 0xFF] ^ table[6][(low >> 8) & 0xFF] ^ table[5][(low >> 16) & 0xFF] ^ table[4][low >> 24]
            ^ table[3][high & 0xFF] ^ table[2][(high >> 8) & 0xFF] ^ table[1][(high >> 16) & 0xFF] ^ table[0][high >> 24];
        p += 8;
        length -= 8;
    }
    while (length--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32cInstruction(uint32_t crc, const void *bytes, size_t length) {
    const unsigned char *p = bytes;
    uint64_t value = ~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        value = _mm_crc32_u64(value, word);
        p += 8;
        length -= 8;
    }
    uint32_t small = (uint32_t)value;
    while (length--) small = _mm_crc32_u8(small, *p++);
    return ~small;
}

int lifeboat_crc32c_has_instruction(void) {
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

uint32_t lifeboat_crc32c(uint32_t crc, const void *bytes, size_t length) {
    static int hasInstruction = -1;  // a benign race: every thread computes the same answer
    int has = __atomic_load_n(&hasInstruction, __ATOMIC_RELAXED);
    if (has < 0) {
        has = lifeboat_crc32c_has_instruction();
        __atomic_store_n(&hasInstruction, has, __ATOMIC_RELAXED);
    }
    return has ? crc32cInstruction(crc, bytes, length) : lifeboat_crc32c_portable(crc, bytes, length);
}

#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
int lifeboat_crc32c_has_instruction(void) { return 1; }

uint32_t lifeboat_crc32c(uint32_t crc, const void *bytes, size_t length) {
    const unsigned char *p = bytes;
    crc = ~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        crc = __crc32cd(crc, word);
        p += 8;
        length -= 8;
    }
    while (length--) crc = __crc32cb(crc, *p++);
    return ~crc;
}

#else
int lifeboat_crc32c_has_instruction(void) { return 0; }

uint32_t lifeboat_crc32c(uint32_t crc, const void *bytes, size_t length) {
    return lifeboat_crc32c_portable(crc, bytes, length);
}
#endif

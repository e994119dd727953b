#ifndef LIFEBOAT_CCHECKSUM_H
#define LIFEBOAT_CCHECKSUM_H

#include <stddef.h>
#include <stdint.h>

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial and final XOR 0xFFFFFFFF):
// the checksum of iSCSI, ext4 and S3's x-amz-checksum-crc32c. Each function continues a
// checksum: pass 0 to start, the previous result to continue over the next bytes, so that
// update(update(0, a), b) == update(0, a ++ b).

/// With the processor's CRC32 instruction when it has one (x86-64 SSE 4.2, checked at run
/// time; AArch64 when compiled for its CRC extension), the portable code otherwise.
uint32_t lifeboat_crc32c(uint32_t crc, const void *bytes, size_t length);

/// Always the portable code (slicing by 8), so tests can check the two against each other.
uint32_t lifeboat_crc32c_portable(uint32_t crc, const void *bytes, size_t length);

/// 1 when `lifeboat_crc32c` uses a CRC32 instruction on this machine.
int lifeboat_crc32c_has_instruction(void);

#endif

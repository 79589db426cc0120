/*
 * An independent reference of the hash spec (packages/domain/src/hash.ts), written from the
 * Linux kernel's include/linux/jhash.h (jhash2, __jhash_mix, __jhash_final, JHASH_INITVAL)
 * and the spec's prose, not from the TypeScript. Addresses are parsed with inet_pton and
 * keys built from network-order bytes, so the TS address parsing and word handling are
 * checked too. hash.reference.test.ts compiles it with `cc` and compares its output with
 * test-vectors/hash.json.
 *
 * stdin, one request per line:
 *   J <initval> <n> <w1> ... <wn>                       -> <jhash2>
 *   P <farm> <affinity> <src> <dst> <sport> <dport> <packetId> <fragment 0|1>
 *                                                      -> <seed> <n> <k1> ... <kn> <hash> <bucket>
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint32_t u32;

#define JHASH_INITVAL 0xdeadbeef
#define BUCKETS 1024

static inline u32 rol32(u32 word, unsigned int shift) { return (word << shift) | (word >> ((-shift) & 31)); }

#define __jhash_mix(a, b, c)                      \
  {                                               \
    a -= c; a ^= rol32(c, 4);  c += b;            \
    b -= a; b ^= rol32(a, 6);  a += c;            \
    c -= b; c ^= rol32(b, 8);  b += a;            \
    a -= c; a ^= rol32(c, 16); c += b;            \
    b -= a; b ^= rol32(a, 19); a += c;            \
    c -= b; c ^= rol32(b, 4);  b += a;            \
  }

#define __jhash_final(a, b, c)                    \
  {                                               \
    c ^= b; c -= rol32(b, 14);                    \
    a ^= c; a -= rol32(c, 11);                    \
    b ^= a; b -= rol32(a, 25);                    \
    c ^= b; c -= rol32(b, 16);                    \
    a ^= c; a -= rol32(c, 4);                     \
    b ^= a; b -= rol32(a, 14);                    \
    c ^= b; c -= rol32(b, 24);                    \
  }

/* jhash2 - hash an array of u32's (kernel include/linux/jhash.h) */
static u32 jhash2(const u32 *k, u32 length, u32 initval) {
  u32 a, b, c;
  a = b = c = JHASH_INITVAL + (length << 2) + initval;
  while (length > 3) {
    a += k[0];
    b += k[1];
    c += k[2];
    __jhash_mix(a, b, c);
    length -= 3;
    k += 3;
  }
  switch (length) {
  case 3: c += k[2]; /* fallthrough */
  case 2: b += k[1]; /* fallthrough */
  case 1: a += k[0];
    __jhash_final(a, b, c);
    break;
  case 0:
    break;
  }
  return c;
}

/* FNV-1a, 32 bit, of the farm name's bytes */
static u32 farm_seed(const char *farm) {
  u32 h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)farm; *p; p++) {
    h ^= *p;
    h *= 16777619u;
  }
  return h;
}

/* An address as network-order bytes; returns its length (4 or 16), 0 if not an address. */
static int parse_addr(const char *text, unsigned char *out) {
  if (strchr(text, ':') != NULL) return inet_pton(AF_INET6, text, out) == 1 ? 16 : 0;
  return inet_pton(AF_INET, text, out) == 1 ? 4 : 0;
}

/* Append the big-endian 32-bit words of `len` bytes. */
static int push_words(u32 *key, int n, const unsigned char *bytes, int len) {
  for (int i = 0; i < len; i += 4) key[n++] = ((u32)bytes[i] << 24) | ((u32)bytes[i + 1] << 16) | ((u32)bytes[i + 2] << 8) | bytes[i + 3];
  return n;
}

int main(void) {
  char line[4096];
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (line[0] == 'J') {
      unsigned long initval, n;
      int off = 0;
      if (sscanf(line, "J %lu %lu%n", &initval, &n, &off) != 2 || n > 64) return 2;
      u32 words[64];
      char *p = line + off;
      for (unsigned long i = 0; i < n; i++) words[i] = (u32)strtoul(p, &p, 10);
      printf("%u\n", jhash2(words, (u32)n, (u32)initval));
    } else if (line[0] == 'P') {
      char farm[256], affinity[64], src_text[64], dst_text[64];
      unsigned long sport, dport, packet_id;
      int fragment;
      if (sscanf(line, "P %255s %63s %63s %63s %lu %lu %lu %d", farm, affinity, src_text, dst_text, &sport, &dport, &packet_id, &fragment) != 8) return 2;
      unsigned char src[16], dst[16];
      int sl = parse_addr(src_text, src), dl = parse_addr(dst_text, dst);
      if (sl == 0 || dl != sl) return 3;
      u32 key[16];
      int n = 0;
      if (strcmp(affinity, "client-ip") == 0) {
        n = push_words(key, n, src, sl);
      } else if (strcmp(affinity, "client-ip-port") == 0) {
        n = push_words(key, n, src, sl);
        if (!fragment) key[n++] = (u32)(sport & 0xffff);
      } else if (strcmp(affinity, "client-network") == 0) {
        /* the source /24 (IPv4) or /48 (IPv6): the prefix bytes, the rest zero, in the fewest words */
        unsigned char net[8] = {0};
        if (sl == 4) {
          memcpy(net, src, 3);
          n = push_words(key, n, net, 4);
        } else {
          memcpy(net, src, 6);
          n = push_words(key, n, net, 8);
        }
      } else if (strcmp(affinity, "symmetric-pair") == 0) {
        /* the lower address first: comparing network-order bytes is comparing the words */
        if (memcmp(dst, src, sl) < 0) {
          n = push_words(key, n, dst, sl);
          n = push_words(key, n, src, sl);
        } else {
          n = push_words(key, n, src, sl);
          n = push_words(key, n, dst, sl);
        }
      } else if (strcmp(affinity, "per-packet") == 0) {
        n = push_words(key, n, src, sl);
        if (!fragment) key[n++] = (u32)(sport & 0xffff);
        key[n++] = (u32)packet_id;
      } else {
        return 4;
      }
      u32 seed = farm_seed(farm);
      u32 hash = jhash2(key, (u32)n, seed);
      /* reciprocal_scale(hash, BUCKETS) */
      u32 bucket = (u32)(((uint64_t)hash * BUCKETS) >> 32);
      printf("%u %d", seed, n);
      for (int i = 0; i < n; i++) printf(" %u", key[i]);
      printf(" %u %u\n", hash, bucket);
    } else if (line[0] != '\n') {
      return 1;
    }
  }
  return 0;
}

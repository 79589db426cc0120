/* jhash2 (Bob Jenkins' lookup3 hashword), exactly as Linux <linux/jhash.h> and
 * the domain specification packages/domain/src/hash.ts. */
#ifndef VIPFARM_HASH_H
#define VIPFARM_HASH_H

#include <linux/types.h>

#define VF_JHASH_INITVAL 0xdeadbeef

static __always_inline __u32 vf_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

#define vf_jhash_mix(a, b, c)                      \
	{                                          \
		a -= c; a ^= vf_rol32(c, 4);  c += b; \
		b -= a; b ^= vf_rol32(a, 6);  a += c; \
		c -= b; c ^= vf_rol32(b, 8);  b += a; \
		a -= c; a ^= vf_rol32(c, 16); c += b; \
		b -= a; b ^= vf_rol32(a, 19); a += c; \
		c -= b; c ^= vf_rol32(b, 4);  b += a; \
	}

#define vf_jhash_final(a, b, c)                    \
	{                                          \
		c ^= b; c -= vf_rol32(b, 14);      \
		a ^= c; a -= vf_rol32(c, 11);      \
		b ^= a; b -= vf_rol32(a, 25);      \
		c ^= b; c -= vf_rol32(b, 16);      \
		a ^= c; a -= vf_rol32(c, 4);       \
		b ^= a; b -= vf_rol32(a, 14);      \
		c ^= b; c -= vf_rol32(b, 24);      \
	}

/* `length` must be a compile-time constant at every call site so that the
 * loop unrolls into straight code (the verifier then sees constant offsets). */
static __always_inline __u32 vf_jhash2(const __u32 *k, __u32 length, __u32 initval)
{
	__u32 a, b, c;

	a = b = c = VF_JHASH_INITVAL + (length << 2) + initval;
#pragma unroll
	for (int i = 0; i < 3; i++) {
		if (length <= 3)
			break;
		a += k[0];
		b += k[1];
		c += k[2];
		vf_jhash_mix(a, b, c);
		length -= 3;
		k += 3;
	}
	switch (length) {
	case 3: c += k[2]; /* fallthrough */
	case 2: b += k[1]; /* fallthrough */
	case 1: a += k[0];
		vf_jhash_final(a, b, c);
		break;
	case 0:
		break;
	}
	return c;
}

/* Dispatch a runtime length (1..8) to constant-length copies. */
static __always_inline __u32 vf_jhash2_n(const __u32 *k, __u32 n, __u32 initval)
{
	switch (n) {
	case 1: return vf_jhash2(k, 1, initval);
	case 2: return vf_jhash2(k, 2, initval);
	case 3: return vf_jhash2(k, 3, initval);
	case 4: return vf_jhash2(k, 4, initval);
	case 5: return vf_jhash2(k, 5, initval);
	case 6: return vf_jhash2(k, 6, initval);
	default: return vf_jhash2(k, 8, initval);
	}
}

/* reciprocal_scale(hash, 1024) */
static __always_inline __u32 vf_bucket_of_hash(__u32 hash)
{
	return (__u32)(((__u64)hash * VF_BUCKETS) >> 32);
}

#endif

#include "textflag.h"

// FOLLOWERS sets the bits of reg for the bytes of the 32 in vec that no
// stage reads after a special byte (see followLow): the two nibbles of each
// byte index followLow (Y12) and followHigh (Y13), whose AND is zero for
// those. 0x0f in every byte is in Y14, zero in Y15.
#define FOLLOWERS(vec, reg) \
	VPSRLW $4, vec, Y4 \
	VPAND Y14, Y4, Y4 \
	VPAND Y14, vec, Y5 \
	VPSHUFB Y5, Y12, Y5 \
	VPSHUFB Y4, Y13, Y4 \
	VPAND Y4, Y5, Y4 \
	VPCMPEQB Y15, Y4, Y4 \
	VPMOVMSKB Y4, reg

// func specialMasks(b []byte, t *byteTable, out []uint64)
//
// For each of the len(out) 64-byte blocks of b, out[i] gets a bit for
// every byte of the block that t holds (bit j for byte 64*i+j): VPSHUFB
// looks each byte's low nibble up in t, or gives 0 where its top bit is
// set. A byte followed in its block by one that no stage reads after it
// is not marked (see specialMasksGeneric). Needs AVX2; len(b) >=
// 64*len(out).
TEXT ·specialMasks(SB), NOSPLIT, $0-56
	MOVQ b_base+0(FP), SI
	MOVQ t+24(FP), AX
	MOVQ out_base+32(FP), DI
	MOVQ out_len+40(FP), CX
	VBROADCASTI128 (AX), Y10
	VBROADCASTI128 ·followLow(SB), Y12
	VBROADCASTI128 ·followHigh(SB), Y13
	MOVL $0x0f0f0f0f, R8
	MOVQ R8, X14
	VPBROADCASTD X14, Y14
	VPXOR Y15, Y15, Y15
	TESTQ CX, CX
	JZ done

loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VPSHUFB Y0, Y10, Y2
	VPSHUFB Y1, Y10, Y3
	VPCMPEQB Y0, Y2, Y2
	VPCMPEQB Y1, Y3, Y3
	VPMOVMSKB Y2, AX
	VPMOVMSKB Y3, BX
	SHLQ $32, BX
	ORQ BX, AX
	FOLLOWERS(Y0, R8)
	FOLLOWERS(Y1, R9)
	SHLQ $32, R9
	ORQ R9, R8
	SHRQ $1, R8
	NOTQ R8
	ANDQ R8, AX
	MOVQ AX, (DI)
	ADDQ $64, SI
	ADDQ $8, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET

// func copyMasks(dst, b []byte, t *byteTable, out []uint64)
//
// specialMasks, copying each block of b to dst as it goes; len(dst) >=
// 64*len(out).
TEXT ·copyMasks(SB), NOSPLIT, $0-80
	MOVQ dst_base+0(FP), DX
	MOVQ b_base+24(FP), SI
	MOVQ t+48(FP), AX
	MOVQ out_base+56(FP), DI
	MOVQ out_len+64(FP), CX
	VBROADCASTI128 (AX), Y10
	VBROADCASTI128 ·followLow(SB), Y12
	VBROADCASTI128 ·followHigh(SB), Y13
	MOVL $0x0f0f0f0f, R8
	MOVQ R8, X14
	VPBROADCASTD X14, Y14
	VPXOR Y15, Y15, Y15
	TESTQ CX, CX
	JZ cdone

cloop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU Y0, (DX)
	VMOVDQU Y1, 32(DX)
	VPSHUFB Y0, Y10, Y2
	VPSHUFB Y1, Y10, Y3
	VPCMPEQB Y0, Y2, Y2
	VPCMPEQB Y1, Y3, Y3
	VPMOVMSKB Y2, AX
	VPMOVMSKB Y3, BX
	SHLQ $32, BX
	ORQ BX, AX
	FOLLOWERS(Y0, R8)
	FOLLOWERS(Y1, R9)
	SHLQ $32, R9
	ORQ R9, R8
	SHRQ $1, R8
	NOTQ R8
	ANDQ R8, AX
	MOVQ AX, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $8, DI
	DECQ CX
	JNZ cloop

cdone:
	VZEROUPPER
	RET

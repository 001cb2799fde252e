#include "textflag.h"

// func specialMasks(b []byte, out []uint64)
//
// For each of the len(out) 64-byte blocks of b, out[i] gets a bit for
// every byte of the block that is '\n', '%' or '\\' (bit j for byte
// 64*i+j). Needs AVX2; len(b) >= 64*len(out).
TEXT ·specialMasks(SB), NOSPLIT, $0-48
	MOVQ b_base+0(FP), SI
	MOVQ out_base+24(FP), DI
	MOVQ out_len+32(FP), CX
	MOVQ $0x0a, AX
	MOVQ AX, X10
	VPBROADCASTB X10, Y10
	MOVQ $0x25, AX
	MOVQ AX, X11
	VPBROADCASTB X11, Y11
	MOVQ $0x5c, AX
	MOVQ AX, X12
	VPBROADCASTB X12, Y12
	TESTQ CX, CX
	JZ done

loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VPCMPEQB Y10, Y0, Y2
	VPCMPEQB Y11, Y0, Y3
	VPCMPEQB Y12, Y0, Y4
	VPOR Y2, Y3, Y3
	VPOR Y3, Y4, Y4
	VPCMPEQB Y10, Y1, Y5
	VPCMPEQB Y11, Y1, Y6
	VPCMPEQB Y12, Y1, Y7
	VPOR Y5, Y6, Y6
	VPOR Y6, Y7, Y7
	VPMOVMSKB Y4, AX
	VPMOVMSKB Y7, BX
	SHLQ $32, BX
	ORQ BX, AX
	MOVQ AX, (DI)
	ADDQ $64, SI
	ADDQ $8, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET

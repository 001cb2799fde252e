package scrub

import "sync"

// bodyBufSizes are the capacities of the pooled buffers that small bodies
// are read into whole: a body takes the smallest that holds it and one
// byte more (to see that it ends where its Content-Length says).
var bodyBufSizes = [...]int{2 << 10, 8 << 10, 32 << 10, smallBody + 1}

var bodyBufs [len(bodyBufSizes)]sync.Pool

// getBodyBuf returns a buffer of length n, pooled when n is at most
// smallBody+1.
func getBodyBuf(n int) *[]byte {
	for i, size := range bodyBufSizes {
		if n <= size {
			if b, ok := bodyBufs[i].Get().(*[]byte); ok {
				*b = (*b)[:n]
				return b
			}
			b := make([]byte, n, size)
			return &b
		}
	}
	b := make([]byte, n) // not pooled: putBodyBuf drops it
	return &b
}

// putBodyBuf gives b back for reuse; it must not be used afterwards.
func putBodyBuf(b *[]byte) {
	for i, size := range bodyBufSizes {
		if cap(*b) == size {
			*b = (*b)[:0]
			bodyBufs[i].Put(b)
			return
		}
	}
}

// Command stackinuse is the Go half of spec/tests/real_go_stackinuse.rs:
// goroutines whose stacks grow to known sizes block, exit en masse, are
// collected and reused, and at each checkpoint the program records
// runtime.MemStats.StackInuse, runtime.NumGoroutine() and the number of Ms
// (runtime.ThreadCreateProfile), then prints one tab-separated line per
// checkpoint at the end:
//
//	checkpoint <name> <StackInuse> <NumGoroutine> <Ms>
//
// Arguments: the number of wave goroutines, of anchor goroutines and of
// reuse goroutines. The test replays the same steps on gostack_spec::State;
// its doc comment says why the steps are what they are.
//
// Determinism: one P (runtime.GOMAXPROCS(1)), no GC but the explicit
// runtime.GC() calls (debug.SetGCPercent(-1)), every goroutine started only
// once the previous one has finished growing and is about to block (the ack
// handshake), exits awaited until NumGoroutine is back to its target, and
// nothing printed (no stack growth of main) before the last checkpoint.
package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// frame is the size of rec's local array: big enough that the first call
// of rec on a new goroutine's 2 KiB stack makes newstack double straight
// to 32 KiB (16 KiB would not fit the frame and the guard), and that a
// second level doubles again to 64 KiB. The test reads rec's real frame
// size off `go build -gcflags=-S`.
const frame = 20000

// ack tells main that the goroutine it just started has reached the
// bottom of its recursion and is about to block.
var ack = make(chan struct{})

// rec recurses d levels deep, each level with a frame of a bit over frame
// bytes, then acknowledges and blocks on block until it is closed.
//
//go:noinline
func rec(d int, block <-chan struct{}) byte {
	var buf [frame]byte
	buf[d] = byte(d)
	if d > 1 {
		buf[0] = rec(d-1, block)
	} else {
		ack <- struct{}{}
		<-block
	}
	return buf[d] + buf[0]
}

// tiny acknowledges and blocks with a small frame: its goroutine keeps
// the 2 KiB stack it was created with.
//
//go:noinline
func tiny(block <-chan struct{}) {
	ack <- struct{}{}
	<-block
}

//go:noinline
func spawnRec(depth int, block chan struct{}) {
	go rec(depth, block)
	<-ack
}

//go:noinline
func spawnTiny(block chan struct{}) {
	go tiny(block)
	<-ack
}

type row struct {
	name    string
	inuse   uint64
	ngo     int
	threads int
}

var (
	rows = make([]row, 0, 32)
	ms   runtime.MemStats
)

//go:noinline
func checkpoint(name string) {
	runtime.ReadMemStats(&ms)
	threads, _ := runtime.ThreadCreateProfile(nil)
	rows = append(rows, row{name, ms.StackInuse, runtime.NumGoroutine(), threads})
}

//go:noinline
func gc() {
	runtime.GC()
}

// waitFor yields until at most n goroutines are left: the others have run
// to their end (gfput) on this P.
//
//go:noinline
func waitFor(n int) {
	for runtime.NumGoroutine() > n {
		runtime.Gosched()
	}
}

func arg(i int) int {
	n, err := strconv.Atoi(os.Args[i])
	if err != nil || n < 0 {
		panic("usage: stackinuse WAVE ANCHORS REUSE")
	}
	return n
}

func main() {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(-1)
	if len(os.Args) != 4 {
		panic("usage: stackinuse WAVE ANCHORS REUSE")
	}
	wave, anchors, reuse := arg(1), arg(2), arg(3)
	pinC := make(chan struct{})
	anchorC := make(chan struct{})
	waveC := make(chan struct{})
	reuseC := make(chan struct{})

	// Settle the runtime: its mark workers exist, caches are flushed,
	// startingStackSize comes from the runtime's own goroutines.
	gc()
	gc()
	checkpoint("start")
	spawnTiny(pinC)
	checkpoint("pinned")
	pinned := runtime.NumGoroutine()
	for i := 0; i < anchors; i++ {
		spawnRec(2, anchorC)
	}
	checkpoint("anchors blocked")
	for i := 0; i < wave; i++ {
		spawnRec(1, waveC)
	}
	checkpoint("wave blocked")
	gc()
	checkpoint("GC 1, wave alive")
	close(waveC)
	waitFor(pinned + anchors)
	checkpoint("wave exited")
	gc()
	checkpoint("GC 2, wave dead")
	for i := 0; i < reuse; i++ {
		spawnRec(1, reuseC)
	}
	checkpoint("reuse blocked")
	close(reuseC)
	close(anchorC)
	waitFor(pinned)
	checkpoint("all exited")
	gc()
	checkpoint("GC 3, all dead")

	out := make([]byte, 0, 4096)
	for _, r := range rows {
		out = append(out, "checkpoint\t"...)
		out = append(out, r.name...)
		out = append(out, '\t')
		out = strconv.AppendUint(out, r.inuse, 10)
		out = append(out, '\t')
		out = strconv.AppendInt(out, int64(r.ngo), 10)
		out = append(out, '\t')
		out = strconv.AppendInt(out, int64(r.threads), 10)
		out = append(out, '\n')
	}
	os.Stdout.Write(out)
}

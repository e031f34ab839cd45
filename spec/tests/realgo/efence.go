// Run with GODEBUG=efence=1 by spec/tests/real_go_efence.rs.
//
// Mode "spawn N": N goroutines that block at once; prints StackInuse and
// StackSys before and after (read into globals, printed at the end, so
// that nothing grows main's stack between the two readings). They are read
// through runtime/metrics: /memory/classes/heap/stacks:bytes is
// StackInuse and /memory/classes/os-stacks:bytes is stacks_sys, and
// readmemstats_m (runtime/mstats.go) reports StackSys as their sum; unlike
// runtime.ReadMemStats this does not throw in Go 1.19 once an efence stack
// was freed (main's first stack is, when it grows).
//
// Mode "grow": main grows its stack once (a local MemStats does not fit
// in its first 4 KiB page), which frees the old page with sysFault, then
// calls runtime.ReadMemStats.
package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
)

var samples = []metrics.Sample{
	{Name: "/memory/classes/heap/stacks:bytes"},
	{Name: "/memory/classes/os-stacks:bytes"},
}

// read returns StackInuse and StackSys.
func read() (uint64, uint64) {
	metrics.Read(samples)
	inuse := samples[0].Value.Uint64()
	return inuse, inuse + samples[1].Value.Uint64()
}

//go:noinline
func park(c chan int) { <-c }

func main() {
	if os.Args[1] == "grow" {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		println("read", m.StackSys)
		return
	}
	n, _ := strconv.Atoi(os.Args[2])
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(-1)
	c := make(chan int)
	read()
	bi, bs := read()
	for i := 0; i < n; i++ {
		go park(c)
	}
	for runtime.NumGoroutine() < n+1 {
		runtime.Gosched()
	}
	ai, as := read()
	println("before", bi, bs)
	println("after", ai, as)
}

package steps

import (
	"net"
	"testing"
)

// refusedAddr returns a loopback address that refuses connections: one a
// listener held and let go.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

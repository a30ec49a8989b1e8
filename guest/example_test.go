package guest_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/safepool/safepool/guest"
)

// In a task module the calls to Handle and HandleJSON go in an init
// function, and a worker calls the handlers, once per task. In these
// examples guest.Call, a hook that exists only in this package's tests,
// stands in for the worker and prints what the host would get.

func ExampleHandleJSON() {
	guest.HandleJSON("square", func(n int) (int, error) {
		return n * n, nil
	})

	fmt.Println(guest.Call("square", "7"))
	fmt.Println(guest.Call("square", "seven"))
	// Output:
	// ok 49
	// error square: input is not valid JSON for int: invalid character 's' looking for beginning of value
}

func ExampleHandle() {
	guest.Handle("shout", func(in []byte) ([]byte, error) {
		if len(in) == 0 {
			return nil, errors.New("nothing to shout")
		}
		return append(bytes.ToUpper(in), '!'), nil
	})

	fmt.Println(guest.Call("shout", "hello"))
	fmt.Println(guest.Call("shout", ""))
	// Output:
	// ok HELLO!
	// error nothing to shout
}

// Command bootygo rebuilds the data path of BOOTy (the Go agent booty succeeds) as a bench peer:
// the same standard-library calls in the same order, so `npm run bench` can show what the old
// agent would do on this machine and disk. Standard library only.
//
//	bootygo deploy URL DEVICE         http.Get -> gzip.NewReader -> io.Copy to the device -> Sync
//	bootygo capture DEVICE URL        read the device -> gzip (level 6) -> multipart POST (BootyImage)
//	bootygo inflate FILE              gzip.NewReader over FILE -> io.Copy to io.Discard (a limit)
package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: bootygo deploy URL DEVICE | capture DEVICE URL | inflate FILE"))
	}
	var n int64
	var err error
	switch os.Args[1] {
	case "deploy":
		n, err = deploy(os.Args[2], arg(3))
	case "capture":
		n, err = capture(os.Args[2], arg(3))
	case "inflate":
		n, err = inflate(os.Args[2])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
	// One line for the harness: how many uncompressed bytes went through.
	fmt.Printf("bootygo %s: %d bytes\n", os.Args[1], n)
}

func arg(i int) string {
	if len(os.Args) <= i {
		fail(fmt.Errorf("%s: missing argument %d", os.Args[1], i))
	}
	return os.Args[i]
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "bootygo: %v\n", err)
	os.Exit(1)
}

// deploy is BOOTy's write path: no O_DIRECT, the io.Copy default 32 KiB buffer, one fsync at the end.
func deploy(url, device string) (int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return 0, err
	}
	out, err := os.OpenFile(device, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	n, err := io.Copy(out, zr)
	if err != nil {
		return n, err
	}
	return n, out.Sync()
}

// capture is BOOTy's upload path: a goroutine compresses the disk into a pipe that the multipart
// body of the POST reads from, so nothing is buffered whole.
func capture(device, url string) (int64, error) {
	in, err := os.Open(device)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	var read int64
	go func() {
		part, err := mw.CreateFormFile("BootyImage", "image.gz")
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		zw, err := gzip.NewWriterLevel(part, 6)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		read, err = io.Copy(zw, in)
		if err == nil {
			err = zw.Close()
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	resp, err := http.Post(url, mw.FormDataContentType(), pr)
	if err != nil {
		return read, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return read, fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return read, nil
}

func inflate(file string) (int64, error) {
	in, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return 0, err
	}
	return io.Copy(io.Discard, zr)
}

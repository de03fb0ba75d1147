# The guest reaches an HTTP server on the host side of user-mode networking.
set -e
. ./common.sh
busybox httpd -p 127.0.0.1:8080 -h www
boot net.log --net user --cmdline "console=ttyS0 quiet atoll.test=net"
check "atoll-vmm exits 0" [ "$status" -eq 0 ]
check "HTTP fetch through slirp" has_line net.log "ATOLL-HTTP $(cat www/hello.txt)"
finish

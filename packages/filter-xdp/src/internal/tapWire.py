# Used by probeModes.sh (tap row of the attach-mode table): the "wire" side of a tap.
# Run in the server namespace: write a TCP SYN for 198.18.0.1:8080 addressed to the VMAC into
# the tap (as if received from the wire), and wait for the host's TCP answer (SYN-ACK or RST).
import fcntl, os, select, socket, struct, sys, time
TUNSETIFF = 0x400454ca
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", sys.argv[1].encode(), IFF_TAP | IFF_NO_PI))
vmac = bytes.fromhex("02fa8ecf2a8f"); cmac = bytes.fromhex("020000000002")
src, dst = socket.inet_aton("198.18.1.2"), socket.inet_aton("198.18.0.1")
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
tcp = struct.pack("!HHIIBBHHH", 40000, 8080, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
frame = vmac + cmac + b"\x08\x00" + ip + tcp
time.sleep(0.3)
os.write(fd, frame)
end = time.time() + 3
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if not r: continue
    f = os.read(fd, 2048)
    if f[12:14] == b"\x08\x00" and f[23] == 6 and f[26:30] == dst and f[30:34] == src:
        print("delivered", "synack" if f[47] & 0x12 == 0x12 else "rst"); sys.exit(0)
print("no: no TCP answer")

# Network steps: http tool responses that text and jsonb cannot hold.
#   - a GIF (image/gif, holds NUL bytes), a text/plain body with a raw NUL
#     and a body that is not UTF-8 come back as {status, headers,
#     body_base64, content_type} with the exact bytes;
#   - JSON with a \u0000 escape comes back as JSON with U+FFFD in its place;
#   - none of them crashes a server process, and the tool's bulkhead slot
#     is released (metrics() in_flight 0);
#   - an error status with a binary body fails the step with a clear message;
#   - a JSON body jsonb refuses (a number beyond numeric's range) fails the
#     step with the reason;
#   - http tools reach only hosts in agentorch.http_allowed_hosts.
# A tiny python http server started by the test serves the bodies.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MIME::Base64 qw(decode_base64);
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $SERVER = <<'PY';
import http.server, sys
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
       b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
BODIES = {
    "/gif": (200, "image/gif", GIF),
    "/json-nul": (200, "application/json", b'{"name": "a\\u0000b", "list": ["\\u0000"], "ok": true}'),
    "/raw-nul": (200, "text/plain", b"before\x00after"),
    "/latin1": (200, "text/plain; charset=iso-8859-1", b"caf\xe9"),
    "/no-type-binary": (200, None, b"\x89PNG\r\n\x1a\n\x00\x00"),
    "/plain": (200, "text/plain; charset=utf-8", "caf\u00e9 ok".encode()),
    "/error-gif": (500, "image/gif", GIF),
    "/huge-number": (200, "application/json", b'{"n": 1e200000}'),
}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        status, ctype, body = BODIES.get(self.path, (404, "text/plain", b"not found"))
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
srv.serve_forever()
PY
my ($out, $h) = ('');
{
	my $t = IPC::Run::timeout(20, exception => 'the http server did not start');
	$h = IPC::Run::start([ 'python3', '-c', $SERVER ], '<', \undef, '>', \$out, '2>',
		"$PostgreSQL::Test::Utils::log_path/110_http_server.log", $t);
	$h->pump while $out !~ /listening on 127\.0\.0\.1:(\d+)/ && $h->pumpable;
	$t->reset;
}
my ($port) = $out =~ /listening on 127\.0\.0\.1:(\d+)/;
die "the http server did not start: $out" unless $port;
END
{
	local $?;
	eval { $h->kill_kill(grace => 2) if $h; };
}

my $node = llm_start(llm_node('http_binary', "agentorch.http_allowed_hosts = '127.0.0.1'"));

for my $path (qw(gif json-nul raw-nul latin1 no-type-binary plain error-gif huge-number))
{
	sql($node, "SELECT agentorch.register_tool('h.$path', 'http', "
		  . json_in({ method => 'GET', url => "http://127.0.0.1:$port/$path" })
		  . ", NULL, '{\"max_concurrency\": 2}')");
	sql($node, "SELECT agentorch.register_workflow('get-$path', "
		  . json_in({ steps => [ { id => 'get', type => 'tool', tool => "h.$path", retry => { max_attempts => 2 } } ] }) . ')');
}

sub fetch
{
	my ($path) = @_;
	my $run = start_run($node, {}, { workflow => "get-$path" });
	my $status = wait_status($node, $run);
	return ($run, $status, jdec(run_field($node, $run, "COALESCE(output->'get', 'null')")));
}

my ($run, $status, $o) = fetch('gif');
is($status, 'succeeded', 'gif: the run succeeds (no crash)');
is($o->{status}, 200, 'gif: status 200');
is($o->{content_type}, 'image/gif', 'gif: content_type image/gif');
ok(!exists $o->{body}, 'gif: no text body');
my $gif = decode_base64($o->{body_base64} // '');
is(length($gif), 43, 'gif: body_base64 holds the 43 bytes');
is(substr($gif, 0, 6), 'GIF89a', 'gif: they are the GIF');
is($o->{headers}{'content-type'}, 'image/gif', 'gif: the headers are kept');

($run, $status, $o) = fetch('json-nul');
is($status, 'succeeded', 'json \\u0000: the run succeeds');
is($o->{body}{name}, "a\xef\xbf\xbdb", 'json \\u0000: it becomes U+FFFD inside a string');
is($o->{body}{list}[0], "\xef\xbf\xbd", 'json \\u0000: also inside an array');
is($o->{body}{ok}, JSON::PP::true, 'json \\u0000: the rest of the value is kept');

($run, $status, $o) = fetch('raw-nul');
is($status, 'succeeded', 'raw NUL: the run succeeds');
is(decode_base64($o->{body_base64} // ''), "before\0after", 'raw NUL: the exact bytes as body_base64');
is($o->{content_type}, 'text/plain', 'raw NUL: content_type');

($run, $status, $o) = fetch('latin1');
is($status, 'succeeded', 'not UTF-8: the run succeeds');
is(decode_base64($o->{body_base64} // ''), "caf\xe9", 'not UTF-8: the exact bytes as body_base64');

($run, $status, $o) = fetch('no-type-binary');
is($status, 'succeeded', 'binary without Content-Type: the run succeeds');
is(decode_base64($o->{body_base64} // ''), "\x89PNG\r\n\x1a\n\0\0", 'binary without Content-Type: body_base64');
ok(exists $o->{content_type} && !defined $o->{content_type}, 'binary without Content-Type: content_type null');

($run, $status, $o) = fetch('plain');
is($status, 'succeeded', 'UTF-8 text: the run succeeds');
is($o->{body}, "caf\xc3\xa9 ok", 'UTF-8 text: a text body as before');

($run, $status) = fetch('error-gif');
is($status, 'failed', 'error with a binary body: the run fails');
my $s = step_row($node, $run, 'get');
like($s->{error}{message}, qr/http tool returned status 500/, 'error with a binary body: the message');
like($s->{error}{detail}, qr/binary body of 43 bytes/, 'error with a binary body: the detail says binary');
is($s->{attempt}, 2, 'error with a binary body: 500 is retried');

# a value jsonb refuses (a number beyond numeric's range): a clean step
# failure, not a step left running or a crash
($run, $status) = fetch('huge-number');
is($status, 'failed', 'a number jsonb cannot hold: the run fails');
$s = step_row($node, $run, 'get');
like($s->{error}{message}, qr/could not process the response: .*numeric/, 'a number jsonb cannot hold: the message says why');
is($s->{attempt}, 1, 'a number jsonb cannot hold: not retried');

ok(!crashed($node), 'no server process crashed');
is(sql($node, "SELECT count(*) FROM agentorch.metrics() WHERE name LIKE 'tool:h.%.in_flight' AND value <> 0"), '0',
	'every bulkhead slot of the tools is released');

# only allowed hosts (localhost is not 127.0.0.1 in the allowlist)
sql($node, "SELECT agentorch.register_tool('h.elsewhere', 'http', "
	  . json_in({ method => 'GET', url => "http://localhost:$port/plain" }) . ')');
sql($node, "SELECT agentorch.register_workflow('get-elsewhere', "
	  . json_in({ steps => [ { id => 'get', type => 'tool', tool => 'h.elsewhere' } ] }) . ')');
($run, $status) = fetch('elsewhere');
is($status, 'failed', 'a host not in http_allowed_hosts: the run fails');
like(step_row($node, $run, 'get')->{error}{message}, qr/host localhost:\d+ of tool "h.elsewhere" is not allowed/,
	'a host not in http_allowed_hosts: the message names the host');

$node->stop;
done_testing();

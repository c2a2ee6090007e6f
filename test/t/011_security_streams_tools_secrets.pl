# Security: private streams, LLM text never becomes SQL, owned and pinned
# tools, and secrets that stay secret (DESIGN.md sections 4 and 9,
# CONVENTIONS.md items 15 and 22). alice and bob are ordinary roles.
#
# - Private streams: agentorch.channel(run) is agentorch_run_<id>_<26
#   base32 chars> for a run the caller may read, NULL for another role's run
#   and for no run at all. Content goes only to that channel; the old
#   agentorch_run_<id> carries nothing; agentorch_events carries run_id,
#   event, status and owner only. bob, listening on the guessable names,
#   hears nothing. A NOTIFY forged by alice does not make follow() show a
#   row that is not in agentorch.chunks.
# - LLM text never becomes SQL: a ${...} reference inside database.query's
#   query or a sql tool's statement is refused (22023), and so is
#   database.query offered to a model; values reach SQL as bound parameters.
# - Tools are owned, granted and pinned; http tools name their credentials
#   by environment variable (headers_env), never carry them.
# - Secrets: api_key_env must match agentorch.api_key_env_pattern, model
#   hosts must pass agentorch.llm_allowed_hosts, a missing key is a clear
#   error and no request, and a provider error that echoes the key leaves
#   it nowhere (tables, notifications, server log).
# - run_sync works for an ordinary role; nested for_each loops.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use HTTP::Tiny;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

$PostgreSQL::Test::Utils::timeout_default = 30;

my $KEY = 'sk-aosec-' . join('', map { ('a' .. 'z', 0 .. 9)[ int(rand(36)) ] } 1 .. 24) . '-KEYMARK';
(my $KEY_MIDDLE = $KEY) =~ s/^sk-aosec-(.{24}).*/$1/;
my $TOKEN = 'tok-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 20) . '-TOKENMARK';

my $mock = mock_start('security.json');

# A provider that answers every request with an error whose body (and a
# response header) echoes the credentials it received, as some real
# providers do with part of a key. The mock server never echoes headers.
my $ECHO_SERVER = <<'PY';
import http.server, json, sys
hits = []
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def _send(self, status, body, ctype="application/json", extra=()):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send(200, {"requests": hits})
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            req = {}
        auth = self.headers.get("Authorization") or ""
        xkey = self.headers.get("x-api-key") or ""
        key = xkey or (auth[7:] if auth.startswith("Bearer ") else auth)
        model = req.get("model", "")
        hits.append({"path": self.path, "model": model, "had_key": bool(key)})
        msg = "Incorrect API key provided: %s (you sent Authorization: %s, x-api-key: %s)" % (key, auth, xkey)
        echo = [("X-Echo-Key", key), ("WWW-Authenticate", "Bearer realm=\"%s\"" % key)]
        if "stream-error" in model:
            ev = json.dumps({"error": {"message": msg, "type": "invalid_request_error", "code": "invalid_api_key"}})
            self._send(200, "data: %s\n\n" % ev, "text/event-stream", echo)
            return
        status = 500 if "five-hundred" in model else 401
        if self.path.endswith("/messages"):
            body = {"type": "error", "error": {"type": "authentication_error", "message": msg}, "request_id": key}
        else:
            body = {"error": {"message": msg, "type": "invalid_request_error", "param": key, "code": "invalid_api_key"}}
        self._send(status, body, extra=echo)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
srv.serve_forever()
PY
my ($echo_out, $echo_h) = ('');
{
	my $t = IPC::Run::timeout(20, exception => 'the echo server did not start');
	$echo_h = IPC::Run::start([ 'python3', '-c', $ECHO_SERVER ], '<', \undef, '>', \$echo_out, '2>',
		"$PostgreSQL::Test::Utils::log_path/011_echo_server.log", $t);
	$echo_h->pump while $echo_out !~ /listening on 127\.0\.0\.1:(\d+)/ && $echo_h->pumpable;
	$t->reset;
}
my ($echo_port) = $echo_out =~ /listening on 127\.0\.0\.1:(\d+)/;
die "the echo server did not start: $echo_out" unless $echo_port;
my $ECHO_URL = "http://127.0.0.1:$echo_port";
END
{
	local $?;    # keep the test's exit status
	eval { $echo_h->kill_kill(grace => 2) if $echo_h; };
}

my $node = llm_node('sec_streams', 'log_min_messages = debug1', 'log_error_verbosity = verbose');
{
	# only the postmaster (and so the executors) has the credentials
	local $ENV{TEST_API_KEY} = $KEY;
	local $ENV{BILLING_TOKEN} = $TOKEN;
	llm_start($node);
}
ok(!defined $ENV{TEST_API_KEY}, 'the key is not in the environment of the test itself');

# ------------------------------------------------------------------ helpers

sub q_as
{
	my ($role, $sql) = @_;
	return psql_result($node, 'postgres', $role, $sql);
}

# is_ok(role, sql, label): the statement works; returns its output.
sub is_ok
{
	my ($role, $sql, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = q_as($role, $sql);
	is($r->{rc}, 0, $label) or diag($r->{err});
	return $r->{out};
}

# refused(role, sql, sqlstate, label, detail regex): fails with the SQLSTATE
# (and the DETAIL matches).
sub refused
{
	my ($role, $sql, $state, $label, $detail) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = q_as($role, $sql);
	my $ok = is($r->{rc} != 0 ? $r->{sqlstate} : 'no error', $state, $label);
	diag($r->{err} || $r->{out}) unless $ok;
	if (defined $detail)
	{
		like($r->{detail} . "\n" . $r->{message}, $detail, "$label: the error says why")
		  or diag($r->{err});
	}
	return $r;
}

sub lit
{
	my ($text) = @_;
	die "lit: text contains the quote tag" if $text =~ /\$L\$/;
	return "\$L\$$text\$L\$";
}

sub settle { return settle_run($node, 'postgres', $_[0]); }

# The error of a step as JSON text ('' when none).
sub step_error
{
	my ($run, $step) = @_;
	return '' unless ($run // '') =~ /^[1-9]\d*$/;
	return sql($node, "SELECT coalesce(error::text, '') FROM agentorch.steps WHERE run_id = $run AND step_id = '$step'");
}

# Listeners: background psql sessions; collect() reads the notifications
# psql printed after a statement.
sub listener
{
	my ($role, @channels) = @_;
	my $l = { psql => $node->background_psql('postgres', extra_params => [ '-U', $role ]), notes => [], role => $role };
	listen_more($l, @channels);
	return $l;
}

sub listen_more
{
	my ($l, @channels) = @_;
	collect($l, join("\n", map { qq{LISTEN "$_";} } @channels));
	return;
}

sub collect
{
	my ($l, $sql) = @_;
	my $out = $l->{psql}->query($sql // 'SELECT 1');
	while ($out =~ /Asynchronous notification "([^"]+)" with payload "(.*)" received from server process with PID (\d+)\./g)
	{
		my ($ch, $raw, $pid) = ($1, $2, $3);
		my $p = eval { jdec($raw) };
		push @{ $l->{notes} }, { channel => $ch, raw => $raw, payload => $p, pid => $pid };
	}
	return;
}

# Collect until code->() holds, for at most 10 s (it is called once the
# run has finished, so the notifications are already queued).
sub collect_until
{
	my ($code, @ls) = @_;
	my $deadline = time() + 10;
	while (time() < $deadline)
	{
		collect($_) for @ls;
		return 1 if $code->();
		usleep(100_000);
	}
	return 0;
}

# ------------------------------------------------------------------ setup

sql($node, qq{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE carol NOLOGIN;
CREATE SCHEMA alice_tools AUTHORIZATION alice;
CREATE TABLE public.sales (region text NOT NULL, amount int NOT NULL);
INSERT INTO public.sales SELECT r, 100 * g + length(r) FROM unnest(ARRAY['north', 'south', 'east']) r, generate_series(1, 6) g;
GRANT SELECT ON public.sales TO PUBLIC;
SELECT agentorch.register_model('m', 'openai', '{"base_url": "$mock->{url}/v1", "model": "mock-sec"}');
});
$node->safe_psql('postgres', q{
GRANT USAGE ON SCHEMA alice_tools TO PUBLIC;
CREATE FUNCTION alice_tools.echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('echo', input, 'user', current_user::text)
$$;
CREATE FUNCTION alice_tools.a_v1(input jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('version', 1, 'input', input, 'user', current_user::text)
$$;
CREATE FUNCTION alice_tools.a_v2(input jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('version', 2, 'input', input, 'user', current_user::text)
$$;
SELECT agentorch.register_tool('t.echo', 'function', '{"function": "alice_tools.echo"}');
}, extra_params => [ '-U', 'alice' ]);
my %OID = map { $_ => sql($node, "SELECT oid FROM pg_roles WHERE rolname = '$_'") } qw(alice bob);

my $MARK_PROMPT = 'MARKPROMPT' . int(rand(1e6));
my $MARK_INPUT = 'MARKINPUT' . int(rand(1e6));
sql_as($node, 'alice', qq{SELECT agentorch.register_workflow('ask_llm', '{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "question?"},
  {"id": "answer", "type": "llm", "model": "m", "depends_on": ["ask"], "prompt": "$MARK_PROMPT \${ask.output.q}"}]}')});

# ================================================================== private streams

my $run = sql_as($node, 'alice', q{SELECT agentorch.run_workflow('ask_llm')});
is(settle($run), 'waiting', 'streams: alice\'s run waits for input');
my $other = sql_as($node, 'alice', q{SELECT agentorch.run_workflow('ask_llm')});

my $ch = q_as('alice', "SELECT agentorch.channel($run)")->{out};
like($ch, qr/^agentorch_run_${run}_[a-z2-7]{26}$/, 'channel(): agentorch_run_<id>_<26 base32 characters> for alice\'s run');
is(q_as('alice', "SELECT agentorch.channel($run)")->{out}, $ch, 'channel(): the same name when asked again');
my $ch_other = q_as('alice', "SELECT agentorch.channel($other)")->{out};
like($ch_other, qr/^agentorch_run_${other}_[a-z2-7]{26}$/, 'channel(): a channel for alice\'s second run');
my ($tok1) = $ch =~ /_([a-z2-7]{26})$/;
my ($tok2) = $ch_other =~ /_([a-z2-7]{26})$/;
ok(defined $tok1 && defined $tok2 && $tok1 ne $tok2, 'channel(): every run has its own token');
is(q_as(undef, "SELECT agentorch.channel($run)")->{out}, $ch, 'channel(): a superuser gets the same channel');
my $bob_ch = q_as('bob', "SELECT agentorch.channel($run) IS NULL, agentorch.channel($run)");
is("$bob_ch->{rc}|$bob_ch->{out}", '0|t|', 'channel(): NULL for bob on alice\'s run');
my $none = q_as('alice', "SELECT agentorch.channel(" . ($run + 1000000) . ") IS NULL, agentorch.channel(" . ($run + 1000000) . ")");
is("$none->{rc}|$none->{out}", '0|t|', 'channel(): NULL for a run that does not exist');
is($bob_ch->{out} . $bob_ch->{err}, $none->{out} . $none->{err},
	'channel(): another role\'s run and a missing run get identical answers');

# listeners: alice on her private channel, the old name and the events;
# bob on the guessable names and the events; the superuser on the old name
my $guess = "agentorch_run_${run}_" . ('a' x 26);
my $la = listener('alice', ($ch =~ /^agentorch_run_/ ? ($ch) : ()), "agentorch_run_$run", 'agentorch_events');
my $lb = listener('bob', "agentorch_run_$run", $guess, "agentorch_run_${run}_", 'agentorch_events');
my $ls = listener($node->safe_psql('postgres', 'SELECT current_user'), "agentorch_run_$run", 'agentorch_events');

# the answer holds the markers and is long enough not to fit a notification
my $q = "$MARK_INPUT " . ('x' x 9000);
is(q_as('alice', "SELECT agentorch.submit_input($run, 'ask', " . lit(jenc({ q => $q })) . ')')->{out}, 't',
	'streams: input submitted');
is(settle($run), 'succeeded', 'streams: the run succeeds');
my $chunks = chunk_list($node, $run);
my %row = map { $_->{seq} => $_ } @$chunks;
my $done = collect_until(sub {
	(grep { $_->{channel} eq 'agentorch_events' && ($_->{payload}{event} // '') eq 'run_succeeded' && ($_->{payload}{run_id} // 0) == $run } @{ $la->{notes} })
	  && (grep { $_->{channel} eq $ch && ($_->{payload}{kind} // '') eq 'final' } @{ $la->{notes} })
}, $la, $lb, $ls);
ok($done, 'streams: alice heard the final chunk on her channel and run_succeeded on agentorch_events');
collect($_) for $lb, $ls;

my @priv = grep { $_->{channel} eq $ch } @{ $la->{notes} };
cmp_ok(scalar @priv, '>=', 2, 'streams: content notifications arrive on the private channel (' . scalar(@priv) . ')');
is(scalar(grep { !ref $_->{payload} || !defined $_->{payload}{run_id} || !defined $_->{payload}{seq} || !defined $_->{payload}{kind} } @priv), 0,
	'streams: every private payload is JSON with run_id, seq and kind');
is(scalar(grep { ref $_->{payload} && !exists $_->{payload}{content} && !$_->{payload}{truncated} } @priv), 0,
	'streams: every private payload has the content or "truncated": true');
is(scalar(grep { ref $_->{payload} && ($_->{payload}{run_id} != $run) } @priv), 0, 'streams: every private payload names the run');
my @bad = grep {
	my $p = $_->{payload};
	!ref $p || !$row{ $p->{seq} } || $row{ $p->{seq} }{kind} ne $p->{kind}
	  || (defined $p->{content} && ($row{ $p->{seq} }{content} // '') ne $p->{content})
} @priv;
is(scalar @bad, 0, 'streams: every private payload matches a row of agentorch.chunks (seq, kind, content)')
  or diag(explain [ map { $_->{raw} } @bad[ 0 .. ($#bad < 4 ? $#bad : 4) ] ]);
ok((grep { ref $_->{payload} && $_->{payload}{truncated} } @priv), 'streams: content too long for a notification is sent as "truncated": true');
is(scalar(grep { length($_->{raw}) > 8000 } @priv), 0, 'streams: no payload exceeds the NOTIFY limit');

my @old = map { grep { $_->{channel} eq "agentorch_run_$run" } @{ $_->{notes} } } $la, $lb, $ls;
is(scalar @old, 0, "streams: the old channel agentorch_run_$run carries nothing (alice, bob, superuser)")
  or diag(explain [ map { $_->{raw} } @old[ 0 .. ($#old < 2 ? $#old : 2) ] ]);
my @bob_run = grep { $_->{channel} ne 'agentorch_events' } @{ $lb->{notes} };
is(scalar @bob_run, 0, 'streams: bob, listening on the guessable names, hears nothing');

my @events = map { grep { $_->{channel} eq 'agentorch_events' } @{ $_->{notes} } } $la, $lb, $ls;
my @mine = grep { ref $_->{payload} && ($_->{payload}{run_id} // 0) == $run } @events;
cmp_ok(scalar @mine, '>=', 3, 'events: the lifecycle of alice\'s run was heard on agentorch_events (' . scalar(@mine) . ')');
ok((grep { $_->{channel} eq 'agentorch_events' && ref $_->{payload} && ($_->{payload}{run_id} // 0) == $run
		  && ($_->{payload}{event} // '') eq 'run_succeeded' } @{ $lb->{notes} }),
	'events: bob hears the lifecycle of alice\'s run on agentorch_events (ids and statuses are public)');
my @extra_keys = grep { my $p = $_->{payload}; !ref $p || grep { !/^(?:run_id|event|status|owner)$/ } keys %$p } @events;
is(scalar @extra_keys, 0, 'events: agentorch_events payloads have no key but run_id, event, status, owner')
  or diag(explain [ map { $_->{raw} } @extra_keys[ 0 .. ($#extra_keys < 4 ? $#extra_keys : 4) ] ]);
is(scalar(grep { !ref $_->{payload} || ($_->{payload}{owner} // '') !~ /^\d+$/ } @events), 0,
	'events: owner is a role oid (a number)');
is(scalar(grep { ($_->{payload}{owner} // 0) != $OID{alice} } @mine), 0, 'events: the owner of alice\'s run is alice\'s oid');
is(scalar(grep { index($_->{raw}, $MARK_PROMPT) >= 0 || index($_->{raw}, $MARK_INPUT) >= 0 } @events), 0,
	'events: no agentorch_events payload carries the prompt or the answer');
$_->{psql}->quit for $la, $lb, $ls;

# ------------------------------------------------------------------ a forged NOTIFY and follow()

is(settle($other), 'waiting', 'forged: alice\'s second run waits for input');
my $lo = listener('alice', grep { /^agentorch_run_/ } $ch_other);
my ($f_out, $f_err) = ('', '');
my $follow = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-U', 'alice', '-c',
	  "SELECT seq || '|' || kind || '|' || coalesce(content, '<null>') FROM agentorch.follow($other, 0, '15s')" ],
	'<', \undef, '>', \$f_out, '2>', \$f_err, IPC::Run::timeout(40));
my $inside = 0;
for (1 .. 100)
{
	$follow->pump_nb;
	last unless $follow->pumpable;    # follow() ended (an error)
	$inside = sql($node, q{SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'alice' AND state = 'active' AND query LIKE '%agentorch.follow(%'}) eq 't';
	last if $inside;
	usleep(100_000);
}
ok($inside, 'forged: alice is inside follow()') or diag($f_err);
my $forge = join("\n",
	(map { my $c = $_; map { qq{NOTIFY "$c", '{"run_id": $other, "seq": $_, "kind": "final", "content": "FORGED_CONTENT_$_"}';} } (1, 2, 3, 50) }
	  grep { $_ =~ /^agentorch_run_/ } ($ch_other, "agentorch_run_$other")),
	qq{SELECT pg_notify('$ch_other', '{"run_id": $other, "seq": 99, "kind": "token", "content": "FORGED_CONTENT_pg_notify"}');});
my $fr = q_as('alice', $forge);
is($fr->{rc}, 0, 'forged: alice notified fake content on her own channel and the old one') or diag($fr->{err});
is(q_as('alice', "SELECT agentorch.submit_input($other, 'ask', " . lit(jenc({ q => 'real answer' })) . ')')->{out}, 't',
	'forged: then the real input');
$follow->finish;
is(settle($other), 'succeeded', 'forged: the run succeeds');
my @followed = grep { length } split /\n/, $f_out;
my %orow = map { $_->{seq} => $_ } @{ chunk_list($node, $other) };
unlike($f_out, qr/FORGED/, 'forged: follow() shows none of the forged content');
my @fake = grep {
	my ($s, $k, $c) = split /\|/, $_, 3;
	!$orow{$s} || $orow{$s}{kind} ne $k || ($orow{$s}{content} // '<null>') ne $c
} @followed;
is(scalar @fake, 0, 'forged: every row follow() returned is a row of agentorch.chunks') or diag(explain \@fake);
cmp_ok(scalar @followed, '>=', 1, 'forged: follow() returned the rows (' . scalar(@followed) . ')') or diag($f_err);
like($followed[-1] // '', qr/^\d+\|final\|.*Echo: $MARK_PROMPT real answer/, 'forged: follow() still ends with the real final chunk');
# a short answer travels inline on the private channel
my ($last_seq) = sort { $b <=> $a } keys %orow;
collect_until(sub { grep { ref $_->{payload} && ($_->{payload}{seq} // -1) == ($last_seq // 0) && $_->{raw} !~ /FORGED/ } @{ $lo->{notes} } }, $lo);
$lo->{psql}->quit;
ok((grep { ref $_->{payload} && index($_->{payload}{content} // '', "$MARK_PROMPT real answer") >= 0 && $_->{raw} !~ /FORGED/ } @{ $lo->{notes} }),
	'streams: the content itself travels inline on the private channel')
  or diag(explain [ map { substr($_->{raw}, 0, 200) } @{ $lo->{notes} } ]);

# ================================================================== LLM text never becomes SQL

refused('alice', q{SELECT agentorch.register_workflow('inj_inline', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "SELECT * FROM public.sales WHERE region = ''${input.region}''"}}]}')},
	'22023', 'no SQL from text: a ${...} inside database.query\'s query is refused', qr/cannot be used inside a SQL statement/);
refused('alice', q{SELECT agentorch.register_workflow('inj_whole', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query", "input": {"query": "${input.q}"}}]}')},
	'22023', 'no SQL from text: a query that is one ${...} reference is refused', qr/cannot be used inside a SQL statement/);
refused('alice', q{SELECT agentorch.register_workflow('inj_input', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query", "input": "${input.q}"}]}')},
	'22023', 'no SQL from text: a database.query input that is a whole template string is refused');
refused('alice', q{SELECT agentorch.register_workflow('inj_llm', '{"steps": [
  {"id": "gen", "type": "llm", "model": "m", "prompt": "write a query"},
  {"id": "q", "type": "tool", "tool": "database.query", "depends_on": ["gen"], "input": {"query": "${gen.output}"}}]}')},
	'22023', 'no SQL from text: a query written by an llm step is refused', qr/cannot be used inside a SQL statement/);
refused('alice', q{SELECT agentorch.register_workflow('inj_offer', '{"steps": [
  {"id": "a", "type": "llm", "model": "m", "prompt": "please call the tool", "tools": ["database.query"]}]}')},
	'22023', 'no SQL from text: an llm step offering database.query is refused', qr/cannot be offered to a model/);
refused('alice', q{SELECT agentorch.register_tool('t.inj', 'sql', '{"sql": "SELECT * FROM public.sales WHERE region = ''${input.region}''"}')},
	'22023', 'no SQL from text: a sql tool whose statement contains ${ is refused');
my $v = q_as('alice', q{SELECT message FROM agentorch.validate_workflow('{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query", "input": {"query": "SELECT ${input.x}"}}]}')})->{out};
like($v, qr/cannot be used inside a SQL statement/, 'no SQL from text: validate_workflow() reports it too');
is(sql($node, q{SELECT count(*) FROM agentorch.workflows WHERE name LIKE 'inj%'}) . sql($node, q{SELECT count(*) FROM agentorch.tools WHERE name = 't.inj'}),
	'00', 'no SQL from text: nothing was stored');

# a simple run that asks for database.query as a tool: refused, or failed
# without the tool ever offered to the model
mock_reset($mock);
my $sr = q_as('alice', q{SELECT agentorch.start('{"prompt": "please call the tool", "tools": ["database.query"]}', 'simple', NULL, '{"model": "m"}')});
my $offered = 0;
if ($sr->{rc} == 0)
{
	my $st = settle($sr->{out});
	isnt($st, 'succeeded', "no SQL from text: a simple run offering database.query does not succeed ($st)");
}
else
{
	like($sr->{sqlstate}, qr/^(?:22023|42501)$/, 'no SQL from text: a simple run offering database.query is refused at start');
}
for my $req (@{ mock_requests($mock) })
{
	$offered++ if grep { (($_->{function} // {})->{name} // $_->{name} // '') =~ /database/ } @{ $req->{body}{tools} || [] };
}
is($offered, 0, 'no SQL from text: the mock was never offered database.query');

# bound parameters work
is_ok('alice', q{SELECT agentorch.register_workflow('by_region', '{"steps": [
  {"id": "q", "type": "tool", "tool": "database.query",
   "input": {"query": "SELECT region, amount FROM public.sales WHERE region = $1 ORDER BY amount", "params": ["${input.region}"]}}]}')},
	'params: database.query with a literal query and params [${input.region}] registers');
my $pr = q_as('alice', q{SELECT agentorch.run_workflow('by_region', '{"region": "south"}')})->{out};
is(settle($pr), 'succeeded', 'params: the run succeeds');
my $rows = run_field($node, $pr || 0, "output->'q'") || 'null';
my $got = jdec($rows);
is(ref $got eq 'ARRAY' ? scalar(@$got) : -1, 6, 'params: $1 bound: 6 rows of region south');
is(scalar(grep { ref $_ ne 'HASH' || $_->{region} ne 'south' } @{ ref $got eq 'ARRAY' ? $got : [] }), 0, 'params: every row is south');
$pr = q_as('alice', q{SELECT agentorch.run_workflow('by_region', '{"region": "south'' OR ''1''=''1"}')})->{out};
is(settle($pr), 'succeeded', 'params: a run whose value looks like SQL succeeds');
is(run_field($node, $pr || 0, "jsonb_array_length(output->'q')"), '0', 'params: ... and the value stays a value (no rows)');

# ================================================================== tools: owned, granted, pinned

is_ok('alice', q{SELECT agentorch.register_tool('t.a', 'function', '{"function": "alice_tools.a_v1"}')}, 'tools: alice registers t.a');
refused('bob', q{SELECT agentorch.register_tool('t.a', 'function', '{"function": "alice_tools.a_v2"}')}, '42501',
	'tools: bob cannot replace alice\'s tool');
refused('bob', q{SELECT agentorch.drop_tool('t.a')}, '42501', 'tools: bob cannot drop alice\'s tool');
is(sql($node, q{SELECT spec->>'function' FROM agentorch.tools WHERE name = 't.a'}), 'alice_tools.a_v1', 'tools: t.a is unchanged');
is_ok('alice', q{SELECT agentorch.register_workflow('use_a', '{"steps": [{"id": "s", "type": "tool", "tool": "t.a", "input": {"who": "caller"}}]}')},
	'tools: alice registers a workflow that uses t.a');
refused('bob', q{SELECT agentorch.register_workflow('bob_use_a', '{"steps": [{"id": "s", "type": "tool", "tool": "t.a"}]}')},
	'42501', 'tools: bob cannot register a workflow that uses alice\'s tool', qr/permission denied for tool/);
refused('bob', q{SELECT agentorch.run_workflow('use_a')}, '42501', 'tools: bob cannot start a workflow that uses alice\'s tool');
refused('bob', q{SELECT agentorch.start('{}', 'fixed', 'use_a')}, '42501', 'tools: ... nor with start(orchestration => fixed)');
refused('bob', q{SELECT agentorch.grant_tool('t.a', 'carol')}, '42501', 'tools: bob cannot grant alice\'s tool');
refused('bob', q{SELECT agentorch.grant_tool('t.a', 'bob')}, '42501', 'tools: bob cannot grant alice\'s tool to himself');
is_ok('alice', q{SELECT agentorch.grant_tool('t.a', 'bob')}, 'tools: alice grants t.a to bob');
is_ok('bob', q{SELECT agentorch.register_workflow('bob_use_a', '{"steps": [{"id": "s", "type": "tool", "tool": "t.a", "input": {"who": "bob"}}]}')},
	'tools: with the grant bob registers a workflow that uses t.a');
my $b1 = q_as('bob', q{SELECT agentorch.run_workflow('use_a')})->{out};
is(settle($b1), 'succeeded', 'tools: with the grant bob\'s run of alice\'s workflow succeeds');
is(run_field($node, $b1 || 0, "output->'s'->>'user'"), 'bob', 'tools: ... and the tool ran as bob');
my $b2 = q_as('bob', q{SELECT agentorch.run_workflow('bob_use_a')})->{out};
is(settle($b2), 'succeeded', 'tools: bob\'s own workflow using t.a succeeds');
refused('bob', q{SELECT agentorch.revoke_tool('t.a', 'bob')}, '42501', 'tools: bob cannot revoke alice\'s grant');
is_ok('alice', q{SELECT agentorch.revoke_tool('t.a', 'bob')}, 'tools: alice revokes t.a from bob');
refused('bob', q{SELECT agentorch.run_workflow('use_a')}, '42501', 'tools: after the revoke bob cannot start alice\'s workflow');
refused('bob', q{SELECT agentorch.run_workflow('bob_use_a')}, '42501', 'tools: after the revoke bob cannot start his own workflow using t.a');
my $a1 = q_as('alice', q{SELECT agentorch.run_workflow('use_a')})->{out};
is(settle($a1), 'succeeded', 'tools: alice still uses her tool');

# pinning: a run keeps the definitions of its tools from its start
is_ok('alice', q{SELECT agentorch.register_tool('t.pin', 'function', '{"function": "alice_tools.a_v1"}')}, 'pin: alice registers t.pin (version 1)');
is_ok('alice', q{SELECT agentorch.register_workflow('pinned', '{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "go?"},
  {"id": "use", "type": "tool", "tool": "t.pin", "depends_on": ["ask"], "input": {"x": "${ask.output.x}"}}]}')},
	'pin: a workflow that waits for input, then uses t.pin');
my $pin = q_as('alice', q{SELECT agentorch.run_workflow('pinned')})->{out};
is(settle($pin), 'waiting', 'pin: the run waits for input');
is_ok('alice', q{SELECT agentorch.register_tool('t.pin', 'function', '{"function": "alice_tools.a_v2"}')}, 'pin: alice replaces t.pin (version 2)');
is(q_as('alice', "SELECT agentorch.submit_input(" . ($pin || 0) . ", 'ask', '{\"x\": 7}')")->{out}, 't', 'pin: input submitted');
is(settle($pin), 'succeeded', 'pin: the run succeeds');
is(run_field($node, $pin || 0, "output->'use'->>'version'"), '1', 'pin: the run in flight used the definition from its start (version 1)');
my $pin2 = q_as('alice', q{SELECT agentorch.run_workflow('pinned')})->{out};
settle($pin2);
q_as('alice', "SELECT agentorch.submit_input(" . ($pin2 || 0) . ", 'ask', '{\"x\": 8}')");
is(settle($pin2), 'succeeded', 'pin: a new run succeeds');
is(run_field($node, $pin2 || 0, "output->'use'->>'version'"), '2', 'pin: a run started after the replacement uses version 2');

# credentials of http tools: named by environment variable, never stored
refused('alice', q{SELECT agentorch.register_tool('t.http_literal', 'http', '{"method": "POST", "url": "https://api.example.com/bill", "headers": {"Authorization": "Bearer sk-abc123def456ghi789"}}')},
	'22023', 'credentials: an http tool with a literal Authorization header is refused');
refused('alice', q{SELECT agentorch.register_tool('t.http_literal2', 'http', '{"method": "POST", "url": "https://api.example.com/bill", "headers": {"X-Api-Key": "abc123def456ghi789jkl"}}')},
	'22023', 'credentials: an http tool with a literal X-Api-Key header is refused');
refused('alice', q{SELECT agentorch.register_tool('t.http_env_alice', 'http', '{"method": "POST", "url": "https://api.example.com/bill", "headers_env": {"Authorization": {"env": "BILLING_TOKEN", "prefix": "Bearer "}}}')},
	'42501', 'credentials: an ordinary role may not attach server credentials to a tool of its own');
is_ok(undef, q{SELECT agentorch.register_tool('t.http_env', 'http', '{"method": "POST", "url": "https://api.example.com/bill", "headers": {"Content-Type": "application/json"}, "headers_env": {"Authorization": {"env": "BILLING_TOKEN", "prefix": "Bearer "}}}')},
	'credentials: headers_env naming BILLING_TOKEN is accepted from a superuser');
refused(undef, q{SELECT agentorch.register_tool('t.http_path', 'http', '{"method": "POST", "url": "https://api.example.com/bill", "headers_env": {"Authorization": {"env": "PATH"}}}')},
	'42501', 'credentials: headers_env naming PATH is refused (agentorch.tool_env_pattern)');
refused(undef, q{SELECT agentorch.register_tool('t.http_key', 'http', '{"method": "POST", "url": "https://api.example.com/bill", "headers_env": {"Authorization": {"env": "TEST_API_KEY"}}}')},
	'42501', 'credentials: headers_env naming a model key variable is refused');
unlike(sql($node, q{SELECT coalesce(string_agg(spec::text, ' '), '') FROM agentorch.tools}), qr/\Q$TOKEN\E|TOKENMARK|sk-abc123/,
	'credentials: no tool spec holds a credential');

# end to end: the credential is sent from the server's environment, and an
# answer that echoes it (the echo server puts it in its error body) keeps it
# out of the run's error; alice uses the tool once the superuser grants it
sql($node, "ALTER SYSTEM SET agentorch.http_allowed_hosts = '127.0.0.1'");
sql($node, 'SELECT pg_reload_conf()');
is_ok(undef, qq{SELECT agentorch.register_tool('t.http_echo', 'http', '{"method": "POST", "url": "$ECHO_URL/bill", "headers_env": {"Authorization": {"env": "BILLING_TOKEN", "prefix": "Bearer "}}}')},
	'credentials: a superuser registers an http tool with headers_env');
is_ok(undef, q{SELECT agentorch.grant_tool('t.http_echo', 'alice')}, 'credentials: and grants it to alice');
is_ok('alice', q{SELECT agentorch.register_workflow('bill', '{"steps": [{"id": "b", "type": "tool", "tool": "t.http_echo", "retry": {"max_attempts": 1}, "input": {"amount": 5}}]}')},
	'credentials: alice registers a workflow using it');
my $bill = q_as('alice', q{SELECT agentorch.run_workflow('bill')})->{out};
is(settle($bill), 'failed', 'credentials: the echo server refused the bill (401, as it always does)');
my $bill_err = run_field($node, $bill || 0, 'error::text') // '';
unlike($bill_err, qr/\Q$TOKEN\E|TOKENMARK/, 'credentials: the echoed token is not in the run\'s error');
like($bill_err, qr/\[REDACTED\]/, 'credentials: it was replaced by [REDACTED]');
ok((grep { $_->{path} eq '/bill' && $_->{had_key} } @{ jdec(HTTP::Tiny->new->get("$ECHO_URL/requests")->{content})->{requests} }),
	'credentials: the request carried the token from the server environment');

# the owner drops the tool
is_ok('alice', q{SELECT agentorch.drop_tool('t.a')}, 'tools: alice drops t.a');
is(sql($node, q{SELECT count(*) FROM agentorch.tools WHERE name = 't.a'}), '0', 'tools: t.a is gone');

# ================================================================== run_sync as an ordinary role

my $rs = q_as('alice', q{SELECT kind || '|' || coalesce(content, '') FROM agentorch.run_sync('{"prompt": "sync for alice"}', '{"model": "m"}')});
is($rs->{rc}, 0, 'run_sync: works for an ordinary role') or diag($rs->{err});
like($rs->{out}, qr/^final\|Echo: sync for alice$/m, 'run_sync: the final chunk carries the answer');

# ================================================================== nested loops

is_ok('alice', q{SELECT agentorch.register_workflow('grid', '{"steps": [
  {"id": "rows", "type": "loop", "for_each": "${input.grid}",
   "step": {"id": "cols", "type": "loop", "for_each": "${item}",
            "step": {"id": "cell", "type": "tool", "tool": "t.echo", "input": {"v": "${item}"}}}}]}')},
	'nested loops: a for_each whose step is a for_each registers');
my @grid = map { my $i = $_; [ map { "r${i}c$_" } 0 .. 5 ] } 0 .. 4;
my $g = q_as('alice', 'SELECT agentorch.run_workflow(\'grid\', ' . lit(jenc({ grid => \@grid })) . ')')->{out};
is(settle($g), 'succeeded', 'nested loops: the run succeeds');
my $out = jdec(run_field($node, $g || 0, "coalesce(output->'rows', 'null')") || 'null');
is(ref $out eq 'ARRAY' ? scalar(@$out) : -1, 5, 'nested loops: the outer loop has 5 results');
is(scalar(grep { ref $_ eq 'ARRAY' && @$_ == 6 } @{ ref $out eq 'ARRAY' ? $out : [] }), 5, 'nested loops: each is an array of 6 results');
my @cells = map { ref $_ eq 'ARRAY' ? @$_ : () } @{ ref $out eq 'ARRAY' ? $out : [] };
is(scalar(grep { ref $_ eq 'HASH' && defined $_->{echo} } @cells), 30, 'nested loops: 30 results, none empty');
is_deeply([ map { ref $_ eq 'HASH' ? $_->{echo}{v} : undef } @cells ], [ map { @$_ } @grid ],
	'nested loops: each result echoes its own item, in order');

# ================================================================== secrets

refused(undef, "SELECT agentorch.register_model('bad_path', 'openai', '{\"base_url\": \"$mock->{url}/v1\", \"model\": \"x\", \"api_key_env\": \"PATH\"}')",
	'42501', 'secrets: api_key_env PATH is refused (agentorch.api_key_env_pattern)');
refused(undef, "SELECT agentorch.register_model('bad_pgdata', 'openai', '{\"base_url\": \"$mock->{url}/v1\", \"model\": \"x\", \"api_key_env\": \"PGDATA\"}')",
	'42501', 'secrets: api_key_env PGDATA is refused');
refused(undef, "SELECT agentorch.register_model('bad_token', 'openai', '{\"base_url\": \"$mock->{url}/v1\", \"model\": \"x\", \"api_key_env\": \"BILLING_TOKEN\"}')",
	'42501', 'secrets: api_key_env naming a tool credential is refused');
is(sql($node, q{SELECT count(*) FROM agentorch.models WHERE name LIKE 'bad%'}), '0', 'secrets: no refused model was stored');

# a key variable that is not set: a clear error, and no request
is_ok(undef, "SELECT agentorch.register_model('unset', 'openai', '{\"base_url\": \"$mock->{url}/v1\", \"model\": \"mock-unset-key\", \"api_key_env\": \"MISSING_API_KEY\"}')",
	'secrets: a model naming MISSING_API_KEY registers');
mock_reset($mock);
my $mk = q_as('alice', q{SELECT agentorch.start('{"prompt": "missing key"}', 'simple', NULL, '{"model": "unset"}')})->{out};
is(settle($mk), 'failed', 'secrets: a run on a model whose key variable is unset fails');
like(run_field($node, $mk || 0, "coalesce(error::text, '')") . step_error($mk, 'main'),
	qr/MISSING_API_KEY/, 'secrets: the error names the variable MISSING_API_KEY');
is(scalar(grep { ($_->{model} // '') eq 'mock-unset-key' } @{ mock_requests($mock) }), 0,
	'secrets: no request was sent without the key');

# a provider error that echoes the key
my @echo_models = ([ 'echo_oa', 'openai', "$ECHO_URL/v1", 'echo-openai' ], [ 'echo_an', 'anthropic', $ECHO_URL, 'echo-anthropic' ],
	[ 'echo_500', 'openai', "$ECHO_URL/v1", 'echo-five-hundred' ], [ 'echo_sse', 'openai', "$ECHO_URL/v1", 'echo-stream-error' ]);
for my $m (@echo_models)
{
	is_ok(undef, "SELECT agentorch.register_model('$m->[0]', '$m->[1]', '{\"base_url\": \"$m->[2]\", \"model\": \"$m->[3]\", \"api_key_env\": \"TEST_API_KEY\"}')",
		"secrets: model $m->[0] (errors echo the key)");
}
# one run per model (a failing step cancels its siblings, so each provider
# gets its own run), each waiting for input first so that the listener is
# on its private channel before anything is streamed
my $hit = sub { my $t = shift; return index($t, $KEY) >= 0 || index($t, $KEY_MIDDLE) >= 0 || $t =~ /KEYMARK|sk-aosec/ || index($t, $TOKEN) >= 0 || $t =~ /TOKENMARK/; };
my (%ek, %ekch);
for my $m (@echo_models)
{
	is_ok('alice', "SELECT agentorch.register_workflow('key_$m->[0]', '{\"steps\": [
  {\"id\": \"ask\", \"type\": \"user_input\", \"prompt\": \"go?\"},
  {\"id\": \"llm\", \"type\": \"llm\", \"model\": \"$m->[0]\", \"depends_on\": [\"ask\"], \"prompt\": \"hello\", \"retry\": {\"max_attempts\": 2}}]}')",
		"secrets: a workflow with an llm step on $m->[0]");
	$ek{ $m->[0] } = q_as('alice', "SELECT agentorch.run_workflow('key_$m->[0]')")->{out} || 0;
	is(settle($ek{ $m->[0] }), 'waiting', "secrets: the $m->[0] run waits for input");
	$ekch{ $m->[0] } = q_as('alice', "SELECT agentorch.channel($ek{ $m->[0] })")->{out};
}
my $le = listener('alice', (grep { /^agentorch_run_/ } values %ekch), (map { "agentorch_run_$_" } values %ek), 'agentorch_events');
q_as('alice', "SELECT agentorch.submit_input($_, 'ask', '{}')") for values %ek;
for my $m (@echo_models)
{
	my $id = $ek{ $m->[0] };
	is(settle($id), 'failed', "secrets: the $m->[0] run fails (the provider refuses the key)");
	my $err = step_error($id, 'llm');
	note("error of $m->[0]: $err");
	like($err, $m->[0] eq 'echo_sse' ? qr/.+/ : $m->[0] eq 'echo_500' ? qr/500/ : qr/401/,
		"secrets: the $m->[0] step error still says what went wrong");
	for my $t (qw(runs steps events chunks checkpoints))
	{
		my @r = split /\n/, sql($node, "SELECT row_to_json(t)::text FROM agentorch.$t t WHERE "
			  . ($t eq 'runs' ? 'id' : 'run_id') . " = $id");
		is(scalar(grep { $hit->($_) } @r), 0, "secrets: no row of agentorch.$t of the $m->[0] run holds the key (" . scalar(@r) . ' rows)');
	}
}
collect_until(sub { 4 <= grep { $_->{channel} eq 'agentorch_events' && ($_->{payload}{event} // '') =~ /^run_(?:failed|succeeded|cancelled)$/ } @{ $le->{notes} } }, $le);
$le->{psql}->quit;
my $hits = HTTP::Tiny->new(timeout => 10)->get("$ECHO_URL/requests");
my $reqs = $hits->{success} ? jdec($hits->{content})->{requests} : [];
is(join(',', sort map { $_->[3] } grep { my $mm = $_->[3]; grep { $_->{had_key} && $_->{model} eq $mm } @$reqs } @echo_models),
	join(',', sort map { $_->[3] } @echo_models), 'secrets: every echo provider received the key (' . scalar(@$reqs) . ' requests)');

# every row of every table of schema agentorch
my @tables = split / /, sql($node, q{SELECT string_agg(format('%I.%I', schemaname, tablename), ' ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'agentorch'});
my ($nrows, @leaks) = (0);
for my $t (@tables)
{
	my @r = split /\n/, sql($node, "SELECT row_to_json(t)::text FROM $t t");
	$nrows += @r;
	push @leaks, map { "$t: " . substr($_, 0, 200) } grep { $hit->($_) } @r;
}
is(scalar @leaks, 0, "secrets: no row of any agentorch table holds a credential ($nrows rows)") or diag(join("\n", @leaks[ 0 .. ($#leaks < 4 ? $#leaks : 4) ]));
is(scalar(grep { $hit->($_->{raw}) } @{ $le->{notes} }), 0, 'secrets: no notification carries the key');

# the allow-list of model hosts
$node->append_conf('postgresql.conf', "agentorch.llm_allowed_hosts = 'api.example.com'\n");
$node->reload;
my $seen = 0;
for (1 .. 50)
{
	$seen = 1, last if sql($node, q{SELECT coalesce(current_setting('agentorch.llm_allowed_hosts', true), '')}) eq 'api.example.com';
	usleep(100_000);
}
ok($seen, 'hosts: agentorch.llm_allowed_hosts = api.example.com after the reload');
refused(undef, "SELECT agentorch.register_model('local', 'openai', '{\"base_url\": \"$mock->{url}/v1\", \"model\": \"x\"}')",
	'42501', 'hosts: a model on 127.0.0.1 is refused when only api.example.com is allowed');
is_ok(undef, q{SELECT agentorch.register_model('remote', 'openai', '{"base_url": "https://api.example.com/v1", "model": "x"}')},
	'hosts: a model on api.example.com is accepted');
mock_reset($mock);
my $hr = q_as('alice', q{SELECT agentorch.start('{"prompt": "host check"}', 'simple', NULL, '{"model": "m"}')})->{out};
is(settle($hr), 'failed', 'hosts: a run on a model registered earlier on 127.0.0.1 now fails');
like(run_field($node, $hr || 0, "coalesce(error::text, '')"), qr/llm_allowed_hosts|not allowed/, 'hosts: ... and the error says the host is not allowed');
is(scalar(@{ mock_requests($mock) }), 0, 'hosts: ... and no request reached the host');

$node->stop;
my $log = slurp_file($node->logfile);
cmp_ok(length($log), '>', 1000, 'the server log was written (' . length($log) . ' bytes)');
ok(!$hit->($log), 'secrets: the server log holds no credential')
  or diag(join("\n", (grep { $hit->($_) } split /\n/, $log)[ 0 .. 4 ]));

done_testing();

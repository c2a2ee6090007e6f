# Record and replay of LLM requests (agentorch.llm_mode, superuser).
#   - an ordinary role can neither SET agentorch.llm_mode, nor read
#     agentorch.llm_cache, nor force a mode through a run's options;
#   - live (the default) records nothing and puts nothing in the options;
#   - record (server-wide, ALTER SYSTEM): OpenAI and Anthropic streamed
#     simple runs, a structured reply, a tool-calling llm step (two
#     requests), a planner run (the planner and its plan's llm step), a
#     permanent 400, run_sync and the selector model's answer are kept in
#     llm_cache, without credentials or traceparent;
#   - the mock is stopped; replay: the same runs give the same chunks
#     (kind and text, consecutive deltas merged: how they are batched into
#     rows depends on timing), outputs, usage and errors, with no
#     connection (nothing listens);
#   - a request never recorded fails at once (42704, naming the model, one
#     attempt); a session a superuser sets back to live does not replay.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $key = 'sk-rrtest-' . join('', map { ('a' .. 'z', 0 .. 9)[ int(rand(36)) ] } 1 .. 24) . '-KEYMARK';
my $mock = mock_start('replay.json', args => ['--strict']);
my $node = llm_node('record_replay');
{
	# only the postmaster has the key, and only while recording
	local $ENV{AO_RR_API_KEY} = $key;
	llm_start($node);
}
register_model($node, 'gpt_keyed', 'openai', $mock, { model => 'mock-gpt', api_key_env => 'AO_RR_API_KEY' });
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt', prices => { input_per_mtok => 1, output_per_mtok => 2 } });
register_model($node, 'claude', 'anthropic', $mock, { model => 'mock-claude' });

sql($node, q{
CREATE ROLE alice LOGIN;
CREATE FUNCTION public.t_one(input jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ SELECT jsonb_build_object('x_plus_1', (input->>'x')::int + 1, 'user', current_user::text) $$;
SELECT agentorch.register_tool('t.one', 'function', '{"function": "public.t_one"}',
    '{"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}');
SELECT agentorch.grant_tool('t.one', 'alice');
SELECT agentorch.register_workflow('rr_tools', '{"steps": [
  {"id": "ask", "type": "llm", "model": "gpt", "tools": ["t.one"], "prompt": "rr-tools: add one to 41"}]}');
SELECT agentorch.register_workflow('rr_two', '{"steps": [
  {"id": "s1", "type": "llm", "model": "claude", "prompt": "rr-anthropic in a workflow"},
  {"id": "s2", "type": "llm", "model": "gpt", "depends_on": ["s1"], "prompt": "rr-openai after: ${s1.output}"}]}');
});

# A role's attempt at something: "ok" or the SQLSTATE and message.
sub try_as
{
	my ($role, $q) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "\\set VERBOSITY verbose\n$q", stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return $err =~ /ERROR:\s+(\w{5}): (.*)/ ? "$1: $2" : "ok";
}

# ---------------------------------------------------------------- security
like(try_as('alice', "SET agentorch.llm_mode = 'replay'"), qr/^42501: permission denied to set parameter "agentorch.llm_mode"/,
	'an ordinary role cannot SET agentorch.llm_mode');
like(try_as('alice', 'SELECT count(*) FROM agentorch.llm_cache'), qr/^42501: permission denied for table llm_cache/,
	'an ordinary role cannot read agentorch.llm_cache');
like(try_as('alice', q{SELECT agentorch.start('{"prompt": "rr-openai"}', 'simple', NULL, '{"model": "gpt", "llm_mode": "replay"}')}),
	qr/^42501: run option "llm_mode" cannot be given/, 'an ordinary role cannot force replay through run options');
like(try_as('alice', q{SELECT agentorch.run_workflow('rr_tools', '{}', '{"llm_mode": "record"}')}),
	qr/^42501: run option "llm_mode" cannot be given/, '... nor record, through run_workflow');
like(try_as('postgres', q{SELECT agentorch.start('{"prompt": "rr-openai"}', 'simple', NULL, '{"model": "gpt", "llm_mode": "live"}')}),
	qr/^42501: run option "llm_mode" cannot be given/, 'not even a superuser: the setting is the way');
is(sql($node, "SELECT count(*) FROM agentorch.runs"), '0', 'the refused starts stored nothing');

# ---------------------------------------------------------------- live
is(sql($node, 'SHOW agentorch.llm_mode'), 'live', 'live is the default');
my $run = start_run($node, { prompt => 'rr-openai: live' }, { model => 'gpt' }, 'alice');
is(wait_status($node, $run), 'succeeded', 'live: the run succeeded');
is(run_field($node, $run, "options ? 'llm_mode'"), 'f', 'live: nothing in the run options');
is(sql($node, "SELECT count(*) FROM agentorch.llm_cache"), '0', 'live: nothing recorded');

# ---------------------------------------------------------------- record
sql($node, "ALTER SYSTEM SET agentorch.llm_mode = 'record'; SELECT pg_reload_conf();");
$node->poll_query_until('postgres', "SELECT current_setting('agentorch.llm_mode') = 'record'")
  or die 'the reload did not reach new sessions';

# the runs, each started the same way in both phases: name => sub returning a run id
my %starts = (
	openai => sub { start_run($node, { prompt => 'rr-openai: say it' }, { model => 'gpt' }, 'alice') },
	anthropic => sub { start_run($node, { prompt => 'rr-anthropic: say it' }, { model => 'claude' }, 'alice') },
	structured => sub {
		start_run($node, { prompt => 'rr-structured: a city', response_schema => { type => 'object',
			required => ['city'], properties => { city => { type => 'string' }, population => { type => 'integer' },
			tags => { type => 'array', items => { type => 'string' } } } } }, { model => 'gpt' }, 'alice') },
	tools => sub { start_run($node, {}, { workflow => 'rr_tools' }, 'alice') },
	two => sub { start_run($node, {}, { workflow => 'rr_two' }, 'alice') },
	keyed => sub { start_run($node, { prompt => 'rr-openai: with a key' }, { model => 'gpt_keyed' }, 'alice') },
	badreq => sub { start_run($node, { prompt => 'rr-badreq: refused' }, { model => 'gpt' }, 'alice') },
	planner => sub {
		sql($node, q{SELECT agentorch.start('{"prompt": "rr-plan: add one, then say it"}', 'planner', NULL, '{"model": "gpt", "tools": ["t.one"]}')}) },
);
my @names = sort keys %starts;
my %expect = (badreq => 'failed');

# what a run gave: status, output, error, usage, and its chunks with
# consecutive token/json_partial deltas of a step merged
sub outcome
{
	my ($run) = @_;
	my $r = jdec(sql($node, "SELECT json_build_object('status', status, 'output', output, 'error', error - 'hint', "
		  . "'prompt_tokens', prompt_tokens, 'completion_tokens', completion_tokens, 'cost', cost::text) FROM agentorch.runs WHERE id = $run"));
	my @merged;
	for my $c (@{ chunk_list($node, $run) })
	{
		my $key = join("\x1f", $c->{step_id} // '', $c->{kind}, $c->{attempt});
		if (@merged && $merged[-1]{key} eq $key && ($c->{kind} eq 'token' || $c->{kind} eq 'json_partial'))
		{
			$merged[-1]{content} .= $c->{content} // '';
			next;
		}
		push @merged, { key => $key, content => $c->{content} // '', data => jenc($c->{data}) };
	}
	$r->{chunks} = [ map { "$_->{key}\x1f$_->{content}\x1f$_->{data}" } @merged ];
	$r->{steps} = sql($node, "SELECT string_agg(step_id || ':' || status || ':' || attempt || ':' || COALESCE(prompt_tokens, 0) "
		  . "|| '/' || COALESCE(completion_tokens, 0), ',' ORDER BY step_id) FROM agentorch.steps WHERE run_id = $run");
	return $r;
}

my %recorded;
for my $n (@names)
{
	my $id = $starts{$n}->();
	is(wait_status($node, $id), $expect{$n} // 'succeeded', "record: $n run finished");
	is(run_field($node, $id, "options->>'llm_mode'"), 'record', "record: $n run took the mode from the session");
	$recorded{$n} = outcome($id);
}
ok(scalar(grep { /\x1ftoken\x1f/ } @{ $recorded{openai}{chunks} }), 'record: the openai run streamed tokens');
ok(scalar(grep { /\x1fjson_partial\x1f/ } @{ $recorded{structured}{chunks} }), 'record: the structured run streamed json_partial');
ok(scalar(grep { /\x1ftool_call\x1f/ } @{ $recorded{tools}{chunks} }), 'record: the tools run made a tool call');
like($recorded{tools}{output}{ask}, qr/x_plus_1/, 'record: the tool result reached the second turn');
like(jenc($recorded{planner}{output}), qr/The plan's step saw/, 'record: the planner\'s plan ran its llm step');
is($recorded{badreq}{error}{error}{sqlstate}, '22000', 'record: the 400 failed the step (22000)');

# run_sync and the selector run in the session: its value decides
my $sync_sql = q{SELECT string_agg(kind || ':' || COALESCE(content, ''), '|' ORDER BY seq) FROM agentorch.run_sync('{"prompt": "rr-sync: go"}', '{"model": "gpt"}') WHERE kind <> 'token'};
my $sync_tokens_sql = q{SELECT string_agg(content, '' ORDER BY seq) FROM agentorch.run_sync('{"prompt": "rr-sync: go"}', '{"model": "gpt"}') WHERE kind = 'token'};
my $sync_recorded = sql_as($node, 'alice', $sync_tokens_sql);
is($sync_recorded, 'run_sync, recorded and replayed.', 'record: run_sync streamed its reply');
my $select_sql = q{SET agentorch.selector = 'llm'; SET agentorch.selector_model = 'gpt'; SET agentorch.selector_cache_ttl = 0;
SELECT orchestration || '|' || confidence || '|' || source || '|' || reason FROM agentorch.select('{"prompt": "rr-select: which way?"}')};
my $select_recorded = sql($node, $select_sql);
like($select_recorded, qr/^simple\|0\.9\|llm\|.*recorded selector answer/, 'record: the selector model answered');

# what was recorded
my $rows = jdec(sql($node, "SELECT json_agg(json_build_object('key', request_hash, 'model', model, 'request', request, 'response', response)) FROM agentorch.llm_cache"));
my @llm = grep { $_->{key} =~ /^llm:[0-9a-f]{64}$/ } @$rows;
# openai, keyed, anthropic, structured, tools (2 turns), two (2 steps), badreq, planner (2), run_sync, selector;
# the live run's request was not recorded
is(scalar @llm, 13, 'record: one recording per distinct request') or diag(join("\n", map { "$_->{model} $_->{request}{path} " . substr(jenc($_->{request}{body}), 0, 120) } @llm));
ok(!grep({ !$_->{request}{body}{model} || !defined $_->{response}{status} } @llm), 'record: each holds the request body and the response status');
my ($bad) = grep { $_->{response}{status} == 400 } @llm;
ok($bad, 'record: the permanent 400 was recorded');
my ($anth) = grep { $_->{request}{provider} eq 'anthropic' } @llm;
is($anth->{request}{path}, '/v1/messages', 'record: the URL path without the host');
like($anth->{response}{content_type}, qr{^text/event-stream}, 'record: the content type');
like($anth->{response}{body}, qr/event: content_block_delta/, 'record: the streamed body as it came');
unlike(jenc(\@llm), qr/traceparent|x-api-key|authorization/i, 'record: no headers, no traceparent in the recordings');
is(sql($node, "SELECT count(*) FROM agentorch.llm_cache WHERE request::text LIKE '%KEYMARK%' OR response::text LIKE '%KEYMARK%'"), '0',
	'record: the API key is nowhere in llm_cache');
is($llm[0]{request}{owner} ne '' ? 'owner' : '', 'owner', 'record: the run owner is part of the request');

# ---------------------------------------------------------------- replay, mock stopped
$mock->{handle}->kill_kill(grace => 5);
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mock->{port}, Proto => 'tcp', Timeout => 2),
	'the mock is stopped: nothing listens on its port');
# server-wide replay; the restart leaves the key out of the postmaster's environment
sql($node, "ALTER SYSTEM SET agentorch.llm_mode = 'replay'");
$node->restart;
is(sql($node, 'SHOW agentorch.llm_mode'), 'replay', 'replay is the server-wide value');

for my $n (@names)
{
	my $id = $starts{$n}->();
	is(wait_status($node, $id), $expect{$n} // 'succeeded', "replay: $n run finished as recorded");
	is(run_field($node, $id, "options->>'llm_mode'"), 'replay', "replay: $n run took the mode from the session");
	my $o = outcome($id);
	is_deeply($o->{chunks}, $recorded{$n}{chunks}, "replay: $n gave the same chunks") or diag(explain($o->{chunks}), explain($recorded{$n}{chunks}));
	is(jenc($o->{output}), jenc($recorded{$n}{output}), "replay: $n gave the same output");
	is(jenc($o->{error}), jenc($recorded{$n}{error}), "replay: $n gave the same error");
	is("$o->{prompt_tokens}/$o->{completion_tokens}/$o->{cost}",
		"$recorded{$n}{prompt_tokens}/$recorded{$n}{completion_tokens}/$recorded{$n}{cost}", "replay: $n has the same usage and cost");
	is($o->{steps}, $recorded{$n}{steps}, "replay: $n steps with the same statuses, attempts and usage");
}
is(sql_as($node, 'alice', $sync_tokens_sql), $sync_recorded, 'replay: run_sync streams the recorded reply');
is(sql($node, $select_sql), $select_recorded, 'replay: the selector gets the recorded answer');

# a recording a superuser broke fails its step, not the executor
sql($node, q{UPDATE agentorch.llm_cache SET response = '{"status": 200, "body_base64": "***"}'
  WHERE request #>> '{body,messages,0,content}' = 'rr-openai: with a key'});
$run = $starts{keyed}->();
is(wait_status($node, $run), 'failed', 'replay: a broken recording fails the step');
like(run_field($node, $run, "error #>> '{error,message}'"), qr/^could not read the recording: the recording llm:\w+ holds invalid base64/,
	'replay: with what is wrong');

# a request never recorded
$run = start_run($node, { prompt => 'rr-openai: never recorded' }, { model => 'gpt' }, 'alice');
is(wait_status($node, $run), 'failed', 'replay: a request with no recording fails');
my $err = jdec(run_field($node, $run, "error->'error'"));
is($err->{sqlstate}, '42704', 'replay: SQLSTATE 42704');
like($err->{message}, qr/^no recording of this request to model "gpt" exists \(agentorch\.llm_mode is replay\)/,
	'replay: the message names the model and says no recording exists') or diag(jenc($err));
like($err->{detail}, qr/Nothing was sent\. Its key in agentorch\.llm_cache would be llm:[0-9a-f]{64}\./, 'replay: the detail gives the key');
is(sql($node, "SELECT attempt FROM agentorch.steps WHERE run_id = $run"), '1', 'replay: not retried');
# the same request as another role: recordings are per role
$run = start_run($node, { prompt => 'rr-openai: say it' }, { model => 'gpt' });
is(wait_status($node, $run), 'failed', 'replay: another role\'s recording is not replayed');
# the selector falls back to its rules when the model has no recording
like(sql($node, $select_sql =~ s/rr-select: which way\?/rr-select: never asked/r), qr/^\w+\|[\d.]+\|(?:rules|default)\|the selector model failed: no recording/,
	'replay: the selector without a recording decides by its rules');

# a superuser's session set back to live does not replay
$run = sql($node, q{SET agentorch.llm_mode = 'live'; SELECT agentorch.start('{"prompt": "rr-openai: say it"}', 'simple', NULL, '{"model": "gpt"}')});
is(run_field($node, $run, "options ? 'llm_mode'"), 'f', 'a session override to live is a live run');
is(wait_status($node, $run), 'failed', 'live with the mock stopped: the request fails');
is(run_field($node, $run, "error #>> '{error,sqlstate}'"), '08000', 'live: a connection error, not a replay');

$node->stop;
done_testing();

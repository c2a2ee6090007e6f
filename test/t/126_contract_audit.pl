# What an audit of the SQL contract (DESIGN sections 4-7, README) found
# broken, each checked as a user meets it:
#   - a simple run forwards temperature, max_tokens and max_turns of its
#     input to the request, and its budget counts the declared max_tokens;
#   - an llm step or http tool past its own timeout fails with 57014;
#   - the run's deadline cuts a running sql/function tool short
#     ("run deadline exceeded", 57014, not retried);
#   - circuit breaker and rate limit of a function tool's policy apply
#     (a held-back step waits, spending no attempt; an open breaker past
#     the run's deadline fails it with 57P03); only retryable failures
#     count toward the breaker;
#   - validate_plan() reports what the planner rejects (database.query,
#     an unregistered model);
#   - negative intervals and step counts and a workflow for a run that
#     takes none are errors (22023); a malformed interval option is 22023;
#   - agentorch.databases no longer naming a database ends its executors
#     at the reload; out of background worker slots is said in the log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('../mock_llm/scripts/demo.json', args => [ '--token-delay-ms', '20' ]);
my $node = llm_start(llm_node('contract_audit', "agentorch.http_allowed_hosts = '127.0.0.1'"));
register_model($node, 'mock', 'openai', $mock, { model => 'mock' });

# Poll a query until it returns $want (or the deadline); the last value.
sub poll_until
{
	my ($q, $want) = @_;
	my $v;
	my $end = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $end)
	{
		$v = sql($node, $q);
		return $v if $v eq $want;
		Time::HiRes::usleep(100_000);
	}
	return $v;
}

# An ERROR's SQLSTATE and message from psql (VERBOSITY verbose).
sub sql_error
{
	my ($q) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$q");
	my ($state, $msg) = $err =~ /ERROR:\s+([0-9A-Z]{5}):\s+([^\n]*)/;
	return ($state // 'none', $msg // $err);
}

# ------------------------------------------------- simple runs' parameters
mock_reset($mock);
my $run = start_run($node,
	{ prompt => 'params please', system => 'be brief', temperature => 0.3, max_tokens => 77, max_turns => 3 },
	{ model => 'mock' });
is(wait_status($node, $run), 'succeeded', 'simple run with temperature, max_tokens, max_turns succeeds');
my ($req) = grep { ($_->{path} // '') =~ m{/chat/completions$} } @{ mock_requests($mock) };
ok($req, 'the mock received the request');
is($req->{body}{temperature}, 0.3, 'the request carries the input temperature');
is($req->{body}{max_tokens}, 77, 'the request carries the input max_tokens');
is(sql($node, "SELECT spec->>'max_turns' FROM agentorch.steps WHERE run_id = $run"), '3',
	'the step keeps the input max_turns');

$run = start_run($node, { prompt => 'hi', max_tokens => 500 }, { model => 'mock', budget => { max_tokens => 100 } });
is(wait_status($node, $run), 'failed', 'a declared max_tokens above the budget fails the run');
is(run_field($node, $run, "error->>'sqlstate'"), '54000', '... with 54000, before any request');

my ($st, $msg) = sql_error("SELECT agentorch.start('{\"prompt\": \"x\", \"temperature\": \"hot\"}', 'simple', NULL, '{\"model\": \"mock\"}')");
is($st, '22023', 'a simple run whose temperature is not a number is refused (22023)');

# ------------------------------------------------------- network timeouts
my $words = join(' ', ('word') x 150);    # echoed at 20 ms a word: 3 s
sql($node, "SELECT agentorch.register_workflow('llm_timeout', "
	  . json_in({ steps => [ { id => 'l', type => 'llm', model => 'mock', prompt => $words,
				timeout => '1s', retry => { max_attempts => 1 } } ] }) . ')');
$run = sql($node, "SELECT agentorch.run_workflow('llm_timeout')");
is(wait_status($node, $run), 'failed', 'an llm step past its timeout fails');
is(sql($node, "SELECT error->>'sqlstate' FROM agentorch.steps WHERE run_id = $run"), '57014',
	'... with 57014 (query_canceled), not as a connection failure');

sql($node, "SELECT agentorch.register_tool('slow_http', 'http', "
	  . json_in({ method => 'POST', url => "$mock->{url}/v1/chat/completions",
			headers => { 'X-Mock-Latency-Ms' => '3000' } }) . ')');
sql($node, "SELECT agentorch.register_workflow('http_timeout', "
	  . json_in({ steps => [ { id => 'h', type => 'tool', tool => 'slow_http',
				input => { model => 'mock', messages => [ { role => 'user', content => 'hi' } ] },
				timeout => '1s', retry => { max_attempts => 1 } } ] }) . ')');
$run = sql($node, "SELECT agentorch.run_workflow('http_timeout')");
is(wait_status($node, $run), 'failed', 'an http tool past its timeout fails');
is(sql($node, "SELECT error->>'sqlstate' FROM agentorch.steps WHERE run_id = $run"), '57014',
	'... with 57014');

# ------------------------------------- the run deadline and transactional tools
sql($node, q{
CREATE FUNCTION public.slow(j jsonb) RETURNS jsonb LANGUAGE sql AS $$SELECT to_jsonb(pg_sleep(5)::text)$$;
SELECT agentorch.register_tool('slow', 'function', '{"function": "public.slow"}');
});
sql($node, "SELECT agentorch.register_workflow('slow_then', "
	  . json_in({ steps => [ { id => 's', type => 'tool', tool => 'slow', input => {}, timeout => '10s' },
			  { id => 'after', type => 'tool', tool => 'slow', input => {}, depends_on => ['s'] } ] }) . ')');
$run = sql($node, "SELECT agentorch.run_workflow('slow_then', '{}', '{\"timeout\": \"1s\"}')");
is(wait_status($node, $run), 'failed', 'a run whose deadline passes inside a function tool fails');
is(sql($node, "SELECT status || ' ' || (error->>'sqlstate') || ' ' || (error->>'message') || ' ' || attempt "
	  . "FROM agentorch.steps WHERE run_id = $run AND step_id = 's'"),
	'failed 57014 run deadline exceeded 1', 'the running tool was cut short at the deadline, not retried');
is(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $run AND step_id = 'after'"), 'cancelled',
	'the step after it never ran');

# --------------------------------------------- a function tool's policies
sql($node, q{
CREATE FUNCTION public.flaky(j jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '40001'; END$$;
SELECT agentorch.register_tool('flaky', 'function', '{"function": "public.flaky"}', NULL,
    '{"circuit_breaker": {"failure_threshold": 2, "cooldown": "60s"}, "retry": {"max_attempts": 1}}');
SELECT agentorch.register_workflow('flaky1', '{"steps": [{"id": "f", "type": "tool", "tool": "flaky", "input": {}}]}');
});
for my $i (1 .. 2)
{
	$run = sql($node, "SELECT agentorch.run_workflow('flaky1')");
	is(wait_status($node, $run), 'failed', "flaky tool: run $i fails");
}
is(metric($node, 'tool:flaky.breaker_open'), 1, 'two failures open the tool\'s circuit breaker');
is(metric($node, 'tool:flaky.requests_total'), 2, '... after two calls');
$run = sql($node, "SELECT agentorch.run_workflow('flaky1')");
is(poll_until("SELECT status || ' ' || attempt || ' ' || (not_before > now() + interval '30 s') "
		. "FROM agentorch.steps WHERE run_id = $run", 'ready 0 true'),
	'ready 0 true', 'with the breaker open the next step waits for the cooldown, spending no attempt');
cmp_ok(metric($node, 'tool:flaky.rejected_total'), '>=', 1, '... counted as rejected');
is(metric($node, 'tool:flaky.requests_total'), 2, '... and the tool was not called');
sql($node, "SELECT agentorch.cancel($run)");
$run = sql($node, "SELECT agentorch.run_workflow('flaky1', '{}', '{\"timeout\": \"5s\"}')");
is(wait_status($node, $run), 'failed', 'a run whose deadline comes before the cooldown ends fails');
is(sql($node, "SELECT error->>'sqlstate' FROM agentorch.steps WHERE run_id = $run"), '57P03',
	'... with 57P03 (the breaker is open)');

sql($node, q{
CREATE FUNCTION public.divide(j jsonb) RETURNS jsonb LANGUAGE sql AS $$SELECT to_jsonb(1 / (j->>'by')::int)$$;
SELECT agentorch.register_tool('divide', 'function', '{"function": "public.divide"}', NULL,
    '{"circuit_breaker": {"failure_threshold": 1, "cooldown": "60s"}, "retry": {"max_attempts": 1}}');
SELECT agentorch.register_workflow('divide0', '{"steps": [{"id": "d", "type": "tool", "tool": "divide", "input": {"by": 0}}]}');
});
$run = sql($node, "SELECT agentorch.run_workflow('divide0')");
is(wait_status($node, $run), 'failed', 'a tool failing on its input (division by zero) fails the step');
is(metric($node, 'tool:divide.breaker_open'), 0,
	'... but a permanent error does not open the tool\'s breaker (any user could send such input)');

sql($node, q{
CREATE FUNCTION public.quick(j jsonb) RETURNS jsonb LANGUAGE sql AS $$SELECT '1'::jsonb$$;
SELECT agentorch.register_tool('quick', 'function', '{"function": "public.quick"}', NULL, '{"rate_limit": {"rpm": 1}}');
SELECT agentorch.register_workflow('quick1', '{"steps": [{"id": "q", "type": "tool", "tool": "quick", "input": {}}]}');
});
$run = sql($node, "SELECT agentorch.run_workflow('quick1')");
is(wait_status($node, $run), 'succeeded', 'rate-limited tool: the first call goes');
$run = sql($node, "SELECT agentorch.run_workflow('quick1')");
is(poll_until("SELECT status || ' ' || attempt || ' ' || (not_before > now() + interval '20 s') "
		. "FROM agentorch.steps WHERE run_id = $run", 'ready 0 true'),
	'ready 0 true', 'the second call in the same minute waits for the rate limit, spending no attempt');
cmp_ok(metric($node, 'tool:quick.deferred_total'), '>=', 1, '... counted as deferred');
sql($node, "SELECT agentorch.cancel($run)");

# ------------------------------------------------------------ validate_plan
is(sql($node, q{SELECT string_agg(path || ': ' || message, '; ') FROM agentorch.validate_plan(
    '{"goal": "g", "steps": [{"id": "a", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1"}}]}')}),
	'/steps/0/tool: database.query cannot be used in a plan: nothing a model writes is executed as SQL',
	'validate_plan: database.query is refused, as the planner refuses it');
is(sql($node, q{SELECT string_agg(path || ': ' || message, '; ') FROM agentorch.validate_plan(
    '{"goal": "g", "steps": [{"id": "a", "type": "llm", "prompt": "x", "model": "nosuch"}]}')}),
	'/steps/0/model: model "nosuch" is not registered', 'validate_plan: an unregistered model is refused');
is(sql($node, q{SELECT count(*) FROM agentorch.validate_plan(
    '{"goal": "g", "steps": [{"id": "a", "type": "llm", "prompt": "x", "model": "mock"}]}')}),
	'0', 'validate_plan: a good plan has no problems');

# ------------------------------------------------------------ bad arguments
for my $case (
	[ "SELECT agentorch.work(-1)",                          'max_steps must not be negative' ],
	[ "SELECT agentorch.work(10, '-1s')",                   'timeout must not be negative' ],
	[ "SELECT agentorch.purge('-1 day')",                   'older_than must not be negative' ],
	[ "SELECT * FROM agentorch.follow(1, 0, '-1s')",        'timeout must not be negative' ],
	[ "SELECT agentorch.wait(1, '-1s')",                    'timeout must not be negative' ],
	[ "SELECT agentorch.start('{\"prompt\": \"x\"}', 'simple', 'quick1')", 'a simple run takes no workflow ("quick1" was given)' ],
	[ "SELECT * FROM agentorch.select('{\"prompt\": \"x\"}', '{\"bogus\": 1}')", 'unknown select option "bogus"' ],
	[ "SELECT agentorch.run_workflow('quick1', '{}', '{\"timeout\": \"banana\"}')",
		'option "timeout" must be an interval such as "5 minutes"' ])
{
	my ($state, $m) = sql_error($case->[0]);
	is("$state $m", "22023 $case->[1]", "refused: $case->[0]");
}

# --------------------------------------------------- agentorch.databases
sql($node, 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION agentorch');
my $executors = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'agentorch executor' AND datname = 'other'";
is(poll_until($executors, '2'), '2', 'database other gets its executors');
sql($node, "ALTER SYSTEM SET agentorch.databases = 'postgres'");
$node->reload;
is(poll_until($executors, '0'), '0', 'a reload that leaves it out of agentorch.databases ends its executors');
ok($node->log_contains('executor \d for database "other" stops: agentorch.databases no longer names it'),
	'... saying why in the log');
$node->safe_psql('other', "SELECT agentorch.register_workflow('w', '{\"steps\": [{\"id\": \"a\", \"type\": \"tool\", \"tool\": \"database.query\", \"input\": {\"query\": \"SELECT 1\"}}]}')");
my $r2 = $node->safe_psql('other', "SELECT agentorch.run_workflow('w')");
sql($node, 'ALTER SYSTEM RESET agentorch.databases');
$node->reload;
is(poll_until($executors, '2'), '2', 'named again (empty = all), it is served again');
my $end = time() + $PostgreSQL::Test::Utils::timeout_default;
my $status = '';
while (time() < $end && $status ne 'succeeded')
{
	$status = $node->safe_psql('other', "SELECT status FROM agentorch.runs WHERE id = $r2");
	Time::HiRes::usleep(100_000);
}
is($status, 'succeeded', 'a run started while it was not served finishes once it is');

# ------------------------------------------------ out of worker slots
# launcher + 2 executors for postgres + 2 for other = 5 > 4
$node->append_conf('postgresql.conf', "max_worker_processes = 4\n");
$node->restart;
my $found = 0;
$end = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $end && !$found)
{
	$found = $node->log_contains('no background worker slot is free for an executor');
	Time::HiRes::usleep(200_000) unless $found;
}
ok($found, 'a database left short of executors for want of worker slots is said in the log');
ok($node->log_contains('Raise max_worker_processes \(now 4;'), '... with what to raise');

$node->stop;
done_testing();

# LLM layer: function calling. An llm step offers two registered function
# tools, t.one and t.two (sent under the provider-legal names t_one and
# t_two); the model calls both in its first turn and answers in text in
# the second. The calls appear as tool_call chunks, both functions ran as
# the role that started the run (an ordinary role), the results went back
# to the model, usage adds up over the turns. A model that never stops
# calling tools fails the step at max_turns; arguments that violate a
# tool's input_schema go back to the model as an error, the tool not run.
# Both providers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('tools.json', args => ['--strict']);
my $node = llm_start(llm_node('llm_tools'));
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });
register_model($node, 'claude', 'anthropic', $mock, { model => 'mock-claude' });

sql($node, q{
CREATE ROLE alice LOGIN;
CREATE TABLE public.tool_calls (id serial PRIMARY KEY, tool text, who text, input jsonb);
GRANT SELECT, INSERT ON public.tool_calls TO alice;
GRANT USAGE ON SEQUENCE public.tool_calls_id_seq TO alice;
CREATE FUNCTION public.t_one(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.tool_calls (tool, who, input) VALUES ('one', current_user, input);
    RETURN jsonb_build_object('tool', 'one', 'user', current_user, 'x_plus_1', (input->>'x')::int + 1);
END $$;
CREATE FUNCTION public.t_two(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.tool_calls (tool, who, input) VALUES ('two', current_user, input);
    RETURN jsonb_build_object('tool', 'two', 'user', current_user, 'y_upper', upper(input->>'y'));
END $$;
SELECT agentorch.register_tool('t.one', 'function', '{"function": "public.t_one"}',
    '{"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}');
SELECT agentorch.register_tool('t.two', 'function', '{"function": "public.t_two"}',
    '{"type": "object", "required": ["y"], "properties": {"y": {"type": "string"}}}');
CREATE FUNCTION public.t_fail(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the warehouse is closed' USING ERRCODE = 'P0001';
END $$;
SELECT agentorch.register_tool('t.fail', 'function', '{"function": "public.t_fail"}');
-- tools are owned: the superuser lets alice use them
SELECT agentorch.grant_tool(t, 'alice') FROM unnest(ARRAY['t.one', 't.two', 't.fail']) t;
});

# the names of the tools a recorded request offered, and its tool results
sub offered
{
	my ($b) = @_;
	return join(',', sort map { $_->{function} ? $_->{function}{name} : $_->{name} } @{ $b->{tools} || [] });
}

sub tool_results
{
	my ($b) = @_;
	my %r;
	for my $m (@{ $b->{messages} || [] })
	{
		if (($m->{role} // '') eq 'tool') { $r{ $m->{tool_call_id} } = $m->{content}; }
		elsif (ref $m->{content} eq 'ARRAY')
		{
			for my $c (@{ $m->{content} })
			{
				next unless ($c->{type} // '') eq 'tool_result';
				my $t = $c->{content};
				$t = join('', map { $_->{text} // '' } @$t) if ref $t eq 'ARRAY';
				$r{ $c->{tool_use_id} } = $t;
			}
		}
	}
	return \%r;
}

for my $p ([ 'gpt', 'openai' ], [ 'claude', 'anthropic' ])
{
	my ($model, $label) = @$p;
	mock_reset($mock);
	sql($node, 'TRUNCATE public.tool_calls');

	# ------------------------------------------------ two tools, two turns
	my $run = start_run($node, { prompt => 'Please use both tools', tools => [ 't.one', 't.two' ] },
		{ model => $model }, 'alice');
	is(wait_status($node, $run), 'succeeded', "$label: the tool conversation succeeds");
	is(run_field($node, $run, 'owner::regrole::text'), 'alice', "$label: the run belongs to alice");

	my $out = run_field($node, $run, "output #>> '{}'");
	like($out, qr/^Both tools answered; the last one said: .*"user": ?"alice".*"WHY"/s,
		"$label: the output is the second turn's text, written after the tool results");
	is(token_text($node, $run), "Calling both.$out", "$label: tokens: the first turn's text, then the answer");

	my @tc = grep { $_->{kind} eq 'tool_call' } @{ chunk_list($node, $run) };
	my @calls = grep { exists $_->{data}{arguments} } @tc;
	my @results = grep { exists $_->{data}{result} || exists $_->{data}{error} } @tc;
	is_deeply([ map { [ $_->{content}, $_->{data}{name}, jenc($_->{data}{arguments}) ] } @calls ],
		[ [ 't.one', 't.one', '{"x":41}' ], [ 't.two', 't.two', '{"y":"why"}' ] ],
		"$label: tool_call chunks of both calls, under the registered names");
	is_deeply([ map { [ $_->{data}{name}, $_->{data}{result}{user}, $_->{data}{result}{x_plus_1} // $_->{data}{result}{y_upper} ] } @results ],
		[ [ 't.one', 'alice', 42 ], [ 't.two', 'alice', 'WHY' ] ],
		"$label: tool_call chunks of both results");
	ok(@calls == 2 && @results == 2 && $calls[-1]{seq} < $results[0]{seq}, "$label: calls are announced before their results");
	is(sql($node, "SELECT string_agg(tool || ':' || who || ':' || input::text, ' ' ORDER BY id) FROM public.tool_calls"),
		'one:alice:{"x": 41} two:alice:{"y": "why"}', "$label: both functions ran once each, as alice");

	my @reqs = @{ mock_requests($mock) };
	is(scalar @reqs, 2, "$label: two requests (two turns)");
	is(offered($reqs[0]{body}), 't_one,t_two', "$label: the tools are offered as t_one and t_two");
	my $tr = tool_results($reqs[1]{body});
	is(join(',', sort keys %$tr), 'call_one,call_two', "$label: the second turn answers both calls by id");
	like($tr->{call_one} // '', qr/"x_plus_1": ?42/, "$label: the result of t.one went back to the model");
	like($tr->{call_two} // '', qr/"y_upper": ?"WHY"/, "$label: the result of t.two went back to the model");
	my $s = step_row($node, $run, 'main');
	is("$s->{prompt_tokens}/$s->{completion_tokens}", '300/30', "$label: usage adds up over the two turns");
	is($s->{attempt}, 1, "$label: one attempt");

	# ------------------------------------------------ arguments that break the input_schema
	mock_reset($mock);
	$run = start_run($node, { prompt => 'bad arguments please', tools => ['t.one'] }, { model => $model }, 'alice');
	is(wait_status($node, $run), 'succeeded', "$label: bad arguments: the conversation goes on");
	is(run_field($node, $run, "output #>> '{}'"), 'The tool refused my arguments.', "$label: bad arguments: the model's answer");
	my ($err) = grep { $_->{kind} eq 'tool_call' && $_->{data}{error} } @{ chunk_list($node, $run) };
	like($err->{data}{error}{message} // '', qr/input of tool "t.one" does not match its input_schema/,
		"$label: bad arguments: a tool_call chunk carries the error");
	like($err->{data}{error}{detail} // '', qr{/x}, "$label: bad arguments: the error detail names the member");
	is(sql($node, "SELECT count(*) FROM public.tool_calls WHERE input->>'x' = 'not a number'"), '0',
		"$label: bad arguments: the tool did not run");
	@reqs = @{ mock_requests($mock) };
	like(tool_results($reqs[-1]{body})->{call_bad} // '', qr/input_schema/,
		"$label: bad arguments: the model was told what was wrong");

	# ------------------------------------------------ a tool that was not offered
	mock_reset($mock);
	$run = start_run($node, { prompt => 'call an imaginary tool', tools => ['t.one'] }, { model => $model }, 'alice');
	is(wait_status($node, $run), 'succeeded', "$label: unknown tool: the conversation goes on");
	is(run_field($node, $run, "output #>> '{}'"), 'That tool does not exist, sorry.', "$label: unknown tool: the model's answer");
	@reqs = @{ mock_requests($mock) };
	is(scalar @reqs, 2, "$label: unknown tool: two turns");
	like(tool_results($reqs[-1]{body})->{call_ghost} // '', qr/unknown tool \\?"t_three\\?"/,
		"$label: unknown tool: the model was told the tool does not exist");

	# ------------------------------------------------ a tool that raises an error
	mock_reset($mock);
	$run = start_run($node, { prompt => 'use the failing tool', tools => ['t.fail'] }, { model => $model }, 'alice');
	is(wait_status($node, $run), 'succeeded', "$label: raising tool: the conversation goes on");
	like(run_field($node, $run, "output #>> '{}'"), qr/^The tool failed: .*the warehouse is closed/,
		"$label: raising tool: the model saw the error message");
	($err) = grep { $_->{kind} eq 'tool_call' && $_->{data}{error} } @{ chunk_list($node, $run) };
	like($err->{data}{error}{message} // '', qr/the warehouse is closed/, "$label: raising tool: a tool_call chunk carries the error");
}

# ------------------------------------------------ a model that never stops calling tools
sql_as($node, 'alice', q{SELECT agentorch.register_workflow('looping', '{"steps": [
  {"id": "l", "type": "llm", "model": "gpt", "prompt": "loop forever", "tools": ["t.one"], "max_turns": 3}]}')});
mock_reset($mock);
my $run = start_run($node, {}, { workflow => 'looping' }, 'alice');
is(wait_status($node, $run), 'failed', 'max_turns: the run fails');
my $s = step_row($node, $run, 'l');
is_deeply([ $s->{status}, $s->{attempt} ], [ 'failed', 1 ], 'max_turns: the step failed at once (no retry)');
like($s->{error}{message}, qr/still asked for tools after 3 turns/, 'max_turns: the error says why');
is(scalar(grep { $_->{rule} eq 'forever' } @{ mock_requests($mock) }), 3, 'max_turns: exactly 3 requests');
like(run_field($node, $run, "error->>'message'"), qr/^step l failed: .*3 turns/, 'max_turns: the run error');

$node->stop;
done_testing();

import agents.robinBaumgarten.Agent;
import engine.core.MarioAgent;
import engine.core.MarioForwardModel;
import engine.core.MarioGame;
import engine.core.MarioResult;
import engine.core.MarioTimer;
import engine.core.MarioWorld;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;

/**
 * Plays many Mario levels with Robin Baumgarten's A* agent in one JVM, without frame pacing.
 *
 * <p>PlayAstar.jar's public entry point ({@code MarioGame.playAstar}) always runs the private
 * {@code gameLoop(level, timer, marioState, visual, fps, lives)} at 30 fps, sleeping between
 * frames. We call that same private method by reflection with {@code fps = 0}, where the engine's
 * {@code getDelay} returns 0 and never sleeps. Everything else matches {@code playAstar}: a fresh
 * agent per play, Mario starts large ({@code marioState = 1}) with one life, no rendering.
 *
 * <p>Input (stdin), one job per line: {@code KEY<TAB>LEVEL_PATH<TAB>TIMER_SECONDS<TAB>RUNS}.
 * Output (stdout), one line per play, flushed at once:
 * {@code RESULT<TAB>KEY<TAB>RUN<TAB>STATUS<TAB>COMPLETION<TAB>JUMPS<TAB>KILLS<TAB>COINS<TAB>LIVES<TAB>REMAINING_MS<TAB>SECONDS}
 * or {@code ERROR<TAB>KEY<TAB>RUN<TAB>MESSAGE} when the engine throws on a level.
 *
 * <p>Options: {@code --fps N} (default 0, unpaced); the agent's search budget per game tick, one of
 * {@code --budget-ms N} (wall-clock milliseconds; the engine's own budget is
 * {@code MarioGame.maxTime = 40}, a compile-time constant inlined into {@code gameLoop}, so we hand
 * the agent its own timer instead) or {@code --budget-nodes N} (at most N search-node expansions per
 * tick: the agent's search loop reads the timer once per expansion, so a timer that counts reads
 * makes the search, and with it the whole play, independent of CPU load; the engine and agent use
 * no randomness). Without a budget option the agent gets the engine's 40 ms timer, as in
 * {@code playAstar}. {@code --stats} adds, after each RESULT, a line
 * {@code STATS<TAB>KEY<TAB>RUN<TAB>TICKS<TAB>EXHAUSTED_TICKS<TAB>TIMER_READS}: game ticks the agent
 * planned, ticks whose search ran out of budget, and timer reads (about one per expansion).
 * {@code --trace} adds {@code TRACE<TAB>KEY<TAB>RUN<TAB>X,X,...<TAB>T,T,...}: Mario's x in pixels
 * (16 per tile) at every tick the agent planned, and the ticks at which he left the ground (jumps,
 * falls off ledges included), so a play can be read segment by segment.
 * {@code --stall-ticks N} ends a play as the engine's TIME_OUT (its own {@code MarioWorld.timeout()})
 * once Mario has not passed his furthest x for N ticks: a stuck agent spends its whole search
 * budget every tick until the game timer runs out, 10-100x the cost of a moving tick, and the result
 * is TIME_OUT either way unless he gets past that x again.
 */
public class FastAstar {
    /** The engine's timer, or one with another wall-clock budget, or a count of expansions; counts its reads. */
    static final class BudgetTimer extends MarioTimer {
        private final MarioTimer inner;  // null: count expansions instead of reading the clock
        private long nodesLeft;
        long reads;
        boolean exhausted;

        BudgetTimer(MarioTimer inner, long nodes) {
            super(0);
            this.inner = inner;
            this.nodesLeft = nodes;
        }

        @Override
        public long getRemainingTime() {
            reads++;
            long left = inner != null ? inner.getRemainingTime() : Math.max(0, nodesLeft--);
            exhausted |= left <= 0;
            return left;
        }
    }

    /** Robin Baumgarten's agent, searching under the chosen budget; tallies ticks and exhausted searches. */
    static final class BudgetAgent implements MarioAgent {
        private final Agent agent = new Agent();
        private final long budgetMs;
        private final long budgetNodes;
        long ticks, exhaustedTicks, reads;
        final StringBuilder xs = new StringBuilder();      // --trace: Mario's x (pixels) per tick
        final StringBuilder takeoffs = new StringBuilder(); // --trace: ticks where Mario left the ground
        private boolean wasOnGround = true;
        private final long stallTicks;  // 0: never end a play early
        private final Runnable timeout;  // the engine's MarioWorld.timeout() of this play
        private float furthest = Float.NEGATIVE_INFINITY;
        private long sinceFurthest;

        BudgetAgent(long budgetMs, long budgetNodes, long stallTicks, Runnable timeout) {
            this.budgetMs = budgetMs;
            this.budgetNodes = budgetNodes;
            this.stallTicks = stallTicks;
            this.timeout = timeout;
        }

        private BudgetTimer timer(MarioTimer engineTimer) {
            if (budgetNodes > 0) {
                return new BudgetTimer(null, budgetNodes);
            }
            return new BudgetTimer(budgetMs > 0 ? new MarioTimer(budgetMs) : engineTimer, 0);
        }

        @Override
        public void initialize(MarioForwardModel model, MarioTimer engineTimer) {
            agent.initialize(model, timer(engineTimer));
        }

        @Override
        public boolean[] getActions(MarioForwardModel model, MarioTimer engineTimer) {
            BudgetTimer t = timer(engineTimer);
            boolean[] actions = agent.getActions(model, t);
            if (xs.length() > 0) {
                xs.append(',');
            }
            float x = model.getMarioFloatPos()[0];
            xs.append((int) x);
            if (x > furthest) {
                furthest = x;
                sinceFurthest = 0;
            } else if (stallTicks > 0 && ++sinceFurthest >= stallTicks) {
                timeout.run();  // the world skips its update from now on and the game loop ends
            }
            boolean onGround = model.isMarioOnGround();
            if (wasOnGround && !onGround) {
                takeoffs.append(takeoffs.length() > 0 ? "," : "").append(ticks);
            }
            wasOnGround = onGround;
            ticks++;
            reads += t.reads;
            exhaustedTicks += t.exhausted ? 1 : 0;
            return actions;
        }

        @Override
        public String getAgentName() {
            return agent.getAgentName();
        }
    }

    public static void main(String[] args) throws Exception {
        int fps = 0;
        long budgetMs = 0, budgetNodes = 0, stallTicks = 0;
        boolean stats = false, trace = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--fps": fps = Integer.parseInt(args[++i]); break;
                case "--budget-ms": budgetMs = Long.parseLong(args[++i]); break;
                case "--budget-nodes": budgetNodes = Long.parseLong(args[++i]); break;
                case "--stall-ticks": stallTicks = Long.parseLong(args[++i]); break;
                case "--stats": stats = true; break;
                case "--trace": trace = true; break;
                default: throw new IllegalArgumentException("unknown option " + args[i]
                        + "; expected --fps N, --budget-ms N, --budget-nodes N, --stall-ticks N, --stats, --trace");
            }
        }
        if (budgetMs > 0 && budgetNodes > 0) {
            throw new IllegalArgumentException("give --budget-ms or --budget-nodes, not both");
        }
        Method setAgent = MarioGame.class.getDeclaredMethod("setAgent", MarioAgent.class);
        setAgent.setAccessible(true);
        Method gameLoop = MarioGame.class.getDeclaredMethod(
                "gameLoop", String.class, int.class, int.class, boolean.class, int.class, int.class);
        gameLoop.setAccessible(true);
        Field world = MarioGame.class.getDeclaredField("world");
        world.setAccessible(true);

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            String[] job = line.split("\t");
            String key = job[0];
            String level = new String(Files.readAllBytes(Paths.get(job[1])), StandardCharsets.UTF_8);
            int timer = Integer.parseInt(job[2]);
            int runs = Integer.parseInt(job[3]);
            for (int run = 0; run < runs; run++) {
                MarioGame game = new MarioGame();
                BudgetAgent agent = new BudgetAgent(budgetMs, budgetNodes, stallTicks, () -> {
                    try {
                        ((MarioWorld) world.get(game)).timeout();
                    } catch (IllegalAccessException e) {
                        throw new IllegalStateException(e);
                    }
                });
                setAgent.invoke(game, agent);
                long start = System.nanoTime();
                try {
                    MarioResult r = (MarioResult) gameLoop.invoke(game, level, timer, 1, false, fps, 1);
                    double seconds = (System.nanoTime() - start) / 1e9;
                    System.out.println("RESULT\t" + key + "\t" + run + "\t" + r.getGameStatus() + "\t"
                            + r.getCompletionPercentage() + "\t" + r.getNumJumps() + "\t" + r.getKillsTotal()
                            + "\t" + r.getCurrentCoins() + "\t" + r.getCurrentLives() + "\t"
                            + r.getRemainingTime() + "\t" + seconds);
                    if (trace) {
                        System.out.println("TRACE\t" + key + "\t" + run + "\t" + agent.xs + "\t" + agent.takeoffs);
                    }
                    if (stats) {
                        System.out.println("STATS\t" + key + "\t" + run + "\t" + agent.ticks + "\t"
                                + agent.exhaustedTicks + "\t" + agent.reads);
                    }
                } catch (InvocationTargetException e) {
                    String msg = String.valueOf(e.getCause()).replace('\t', ' ').replace('\n', ' ');
                    System.out.println("ERROR\t" + key + "\t" + run + "\t" + msg);
                }
                System.out.flush();
            }
        }
    }
}

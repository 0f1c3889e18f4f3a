import agents.robinBaumgarten.Agent;
import engine.core.MarioAgent;
import engine.core.MarioGame;
import engine.core.MarioResult;

import java.io.BufferedReader;
import java.io.InputStreamReader;
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
 * Optional argument: fps (default 0, i.e. unpaced).
 */
public class FastAstar {
    public static void main(String[] args) throws Exception {
        int fps = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        Method setAgent = MarioGame.class.getDeclaredMethod("setAgent", MarioAgent.class);
        setAgent.setAccessible(true);
        Method gameLoop = MarioGame.class.getDeclaredMethod(
                "gameLoop", String.class, int.class, int.class, boolean.class, int.class, int.class);
        gameLoop.setAccessible(true);

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
                setAgent.invoke(game, new Agent());
                long start = System.nanoTime();
                try {
                    MarioResult r = (MarioResult) gameLoop.invoke(game, level, timer, 1, false, fps, 1);
                    double seconds = (System.nanoTime() - start) / 1e9;
                    System.out.println("RESULT\t" + key + "\t" + run + "\t" + r.getGameStatus() + "\t"
                            + r.getCompletionPercentage() + "\t" + r.getNumJumps() + "\t" + r.getKillsTotal()
                            + "\t" + r.getCurrentCoins() + "\t" + r.getCurrentLives() + "\t"
                            + r.getRemainingTime() + "\t" + seconds);
                } catch (InvocationTargetException e) {
                    String msg = String.valueOf(e.getCause()).replace('\t', ' ').replace('\n', ' ');
                    System.out.println("ERROR\t" + key + "\t" + run + "\t" + msg);
                }
                System.out.flush();
            }
        }
    }
}
